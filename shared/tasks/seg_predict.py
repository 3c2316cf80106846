"""Segmentation inference on unlabelled volumes: label maps and per-class volumes in mm3."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.transforms import NormalizeIntensity

from shared.dicom import index_folder
from shared.errors import DataError
from shared.tasks.base import Prediction
from shared.volumes.nifti import list_nifti, read_nifti
from shared.volumes.series import load_series

__all__ = ["UnlabelledVolume", "class_volumes", "predict_volumes", "read_volumes"]

logger = logging.getLogger("medfleet.predict")

#: ``(1, 1, H, W, D) image -> (1, K, H, W, D) logits`` (the task's sliding window).
Infer = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class UnlabelledVolume:
    """One image volume to segment: its key, float32 (H, W, D) voxels and spacing (mm)."""

    key: str
    image: np.ndarray
    spacing: tuple[float, float, float]


def read_volumes(source: Path) -> Iterator[UnlabelledVolume]:
    """Yield the volumes under `source`, one at a time (no labels needed).

    A folder of ``.nii``/``.nii.gz`` files (or one holding ``imagesTr``) is read as
    NIfTI volumes keyed by file stem; any other folder is walked as DICOM, one volume
    per series keyed by its Series Instance UID. A series that does not form one
    regular volume is skipped and counted in a log line (no identifiers).
    """
    source = Path(source)
    nifti_dir = source / "imagesTr" if (source / "imagesTr").is_dir() else source
    nifti = list_nifti(nifti_dir) if nifti_dir.is_dir() else {}
    if nifti:
        for name, path in nifti.items():
            volume = read_nifti(path)
            yield UnlabelledVolume(name, volume.array.astype(np.float32), volume.spacing)
        return
    records, _ = index_folder(source)
    series: dict[str, list[Path]] = defaultdict(list)
    for record in records:
        series[record.series_instance_uid].append(record.path)
    skipped = 0
    for uid in sorted(series):
        try:
            loaded = load_series(series[uid])
        except DataError:
            skipped += 1
            continue
        yield UnlabelledVolume(uid, loaded.array, loaded.stack.spacing)
    if skipped:
        logger.warning("%d DICOM series skipped: they do not form one regular volume", skipped)


def class_volumes(
    labels: np.ndarray, spacing: tuple[float, float, float], num_classes: int
) -> dict[str, float]:
    """``volume_mm3_<k>`` of every foreground class k: voxel count times voxel volume."""
    counts = np.bincount(labels.ravel(), minlength=num_classes)
    voxel = float(np.prod(spacing))
    return {f"volume_mm3_{k}": float(counts[k]) * voxel for k in range(1, num_classes)}


def predict_volumes(
    volumes: Iterator[UnlabelledVolume], infer: Infer, num_classes: int, device: torch.device
) -> list[Prediction]:
    """Segment each volume: argmax label map (uint8, H x W x D) and class volumes.

    Intensities are normalised as in evaluation (z-score over the non-zero voxels).
    """
    normalise = NormalizeIntensity(nonzero=True, channel_wise=True)
    predictions = []
    for volume in volumes:
        image = torch.as_tensor(normalise(volume.image[np.newaxis]), dtype=torch.float32)
        with torch.no_grad():
            logits = infer(image[None].to(device))
        labels = torch.argmax(logits[0], dim=0).cpu().numpy().astype(np.uint8)
        values = class_volumes(labels, volume.spacing, num_classes)
        predictions.append(Prediction(volume.key, values, labels))
    if not predictions:
        raise DataError(
            "no volumes to segment: give a folder of DICOM series or NIfTI images "
            "(check it with `medfleet data check`)"
        )
    return predictions
