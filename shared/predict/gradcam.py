"""Grad-CAM heatmaps of a classifier (MONAI's GradCAM) and their overlays on the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["class_activation_maps", "save_overlay"]


def class_activation_maps(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    class_index: int = 1,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Grad-CAM maps of `class_index` for a batch, each scaled to [0, 1].

    Parameters
    ----------
    model : nn.Module
        The classifier, in eval mode (its weights are not changed).
    images : torch.Tensor
        The network's input batch, (B, C, H, W) on the model's device.
    layer : str
        Name of the layer whose activations and gradients make the map (a module name
        from ``model.named_modules()``, e.g. the last convolutional block).
    class_index : int
        The class the map explains (1: malignant).
    size : tuple of int, optional
        (rows, columns) to resize the maps to (bilinear), e.g. the original image's size
        when the network saw a resized copy; the network input's size when None.

    Returns
    -------
    numpy.ndarray
        float32 (B, rows, columns); higher where the evidence for the class is.
    """
    from monai.visualize import GradCAM

    names = dict(model.named_modules())
    if layer not in names:
        raise ValueError(f"layer '{layer}' is not a module of {type(model).__name__}")
    # MONAI's default post-processing scales each map to [1, 0] (highest evidence 0):
    # here the highest evidence is 1, as the colour map and the overlay's weight expect.
    cam = GradCAM(nn_module=_Centred(model), target_layers=f"model.{layer}", postprocessing=_unit)
    with torch.enable_grad():
        maps = cam(x=images, class_idx=class_index)
    model.zero_grad(set_to_none=True)
    maps = maps.detach().float()
    if size is not None and tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    return np.clip(maps[:, 0].cpu().numpy(), 0.0, 1.0).astype(np.float32)


def _unit(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map of a (B, 1, H, W) batch to [0, 1]; an all-equal map becomes 0."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    span = (flat.max(dim=1).values.view(-1, 1, 1, 1) - low).clamp_min(1e-12)
    return (maps - low) / span


class _Centred(nn.Module):
    """The classifier with each logit minus the mean logit.

    Softmax ignores what all logits share; the raw class-1 logit's gradient does not, and
    on a two-class model much of it is that shared part (the image's overall texture),
    not the evidence for the class. Centred, the class-1 output is half the log-odds.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits - logits.mean(dim=1, keepdim=True)


def save_overlay(image: np.ndarray, heatmap: np.ndarray, path: Path, alpha: float = 0.45) -> Path:
    """Write the grey-scale `image` with `heatmap` blended over it in the jet colours.

    Parameters
    ----------
    image : numpy.ndarray
        (rows, columns) display image with values in [0, 1].
    heatmap : numpy.ndarray
        (rows, columns) map in [0, 1], e.g. from `class_activation_maps`.
    path : Path
        PNG file to write.
    alpha : float
        Weight of the heatmap colour where the map is 1 (it fades to the image at 0).
    """
    from matplotlib import colormaps
    from matplotlib.image import imsave  # Agg: needs no display

    if image.shape != heatmap.shape:
        raise ValueError(f"image {image.shape} and heatmap {heatmap.shape} differ in size")
    grey = np.repeat(np.clip(image, 0.0, 1.0)[..., None], 3, axis=2)
    colour = colormaps["jet"](np.clip(heatmap, 0.0, 1.0))[..., :3]
    weight = alpha * np.clip(heatmap, 0.0, 1.0)[..., None]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    imsave(path, np.clip((1.0 - weight) * grey + weight * colour, 0.0, 1.0))
    return Path(path)
