"""Segmentation scores: per-class Dice and HD95 (mm) of each case, and their site summary."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import DiceMetric, HausdorffDistanceMetric
from monai.networks.utils import one_hot

__all__ = ["case_scores", "summarise_scores"]


def case_scores(
    pred: torch.Tensor,
    label: torch.Tensor,
    num_classes: int,
    spacing: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Dice and 95th-percentile Hausdorff distance of each foreground class of one case.

    Parameters
    ----------
    pred, label : torch.Tensor
        Class-index maps of shape (1, 1, *spatial) (batch and channel of one).
    num_classes : int
        Classes including background (class 0, which is not scored).
    spacing : sequence of float, optional
        Voxel size in mm per spatial axis; distances are in voxels when None.

    Returns
    -------
    tuple of np.ndarray
        Dice and HD95, each of shape (num_classes - 1,). A class absent from the
        reference is NaN in both (undefined). A class present in the reference but
        missed by the prediction has Dice 0 and HD95 equal to the image diagonal, the
        largest distance possible, so that a site's mean stays finite.
    """
    pred_1h = one_hot(pred.long(), num_classes)
    label_1h = one_hot(label.long(), num_classes)
    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    hd95 = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")
    with warnings.catch_warnings():
        # MONAI warns about empty masks; they are handled explicitly below.
        warnings.simplefilter("ignore")
        dice_values = _first_row(dice(pred_1h, label_1h))
        hd_values = _first_row(hd95(pred_1h, label_1h, spacing=_spacing(spacing, pred)))
    present = label_1h[0, 1:].flatten(1).any(dim=1).cpu().numpy()
    predicted = pred_1h[0, 1:].flatten(1).any(dim=1).cpu().numpy()
    diagonal = _diagonal(pred.shape[2:], spacing)
    hd_values = np.where(present & ~predicted, diagonal, hd_values)
    hd_values = np.where(present, hd_values, np.nan)
    dice_values = np.where(present, dice_values, np.nan)
    return dice_values, hd_values


def summarise_scores(dice: Sequence[np.ndarray], hd95: Sequence[np.ndarray]) -> dict[str, float]:
    """Average per-case scores into flat site metrics.

    Returns ``dice_<c>`` and ``hd95_<c>`` (mean over the cases where class c is present)
    and ``dice`` and ``hd95`` (mean of the per-class values). NaN when undefined.
    """
    if not dice:
        return {}
    metrics: dict[str, float] = {}
    for name, values in (("dice", dice), ("hd95", hd95)):
        per_class = [_nanmean(column) for column in np.stack(values).T]
        for index, value in enumerate(per_class, start=1):
            metrics[f"{name}_{index}"] = value
        metrics[name] = _nanmean(np.asarray(per_class))
    return metrics


def _first_row(result: object) -> np.ndarray:
    # MONAI metrics return a (batch, classes) tensor for a tensor input.
    if not isinstance(result, torch.Tensor):
        raise TypeError("expected a tensor from the MONAI metric")
    return result[0].double().cpu().numpy()


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _spacing(spacing: Sequence[float] | None, pred: torch.Tensor) -> list[float] | None:
    if spacing is None:
        return None
    values = [float(s) for s in np.asarray(spacing, dtype=float).ravel()]
    if len(values) != pred.ndim - 2:
        raise ValueError(f"spacing needs {pred.ndim - 2} values, got {len(values)}")
    return values


def _diagonal(shape: Sequence[int], spacing: Sequence[float] | None) -> float:
    sizes = np.asarray(shape, dtype=float)
    if spacing is not None:
        sizes = sizes * np.asarray(spacing, dtype=float).ravel()
    return float(np.sqrt((sizes**2).sum()))
