"""Put the series of one study on the grid of its reference series and stack them as channels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import ResampleToMatch

from shared.volumes.series import SeriesVolume

__all__ = ["resample_onto", "stack_channels"]


def _meta(volume: SeriesVolume) -> MetaTensor:
    """The volume as a channel-first MetaTensor whose affine is its DICOM geometry (LPS)."""
    affine = torch.as_tensor(volume.affine, dtype=torch.float64)
    return MetaTensor(torch.as_tensor(volume.array[np.newaxis]), affine=affine)


def resample_onto(moving: SeriesVolume, reference: SeriesVolume) -> np.ndarray:
    """Resample `moving` onto the voxel grid of `reference` (trilinear, zeros outside).

    Both series must share a frame of reference: their affines map voxels into the same
    patient coordinates, and MONAI's `ResampleToMatch` interpolates `moving` at the
    patient position of every `reference` voxel centre.

    Returns
    -------
    numpy.ndarray
        float32 with the shape of ``reference.array``; 0 where `moving` does not reach.
    """
    resample = ResampleToMatch(mode="bilinear", padding_mode="zeros", dtype=np.float32)
    out = resample(_meta(moving), _meta(reference))
    return np.asarray(torch.as_tensor(out)[0].numpy(), dtype=np.float32)


def stack_channels(reference: SeriesVolume, others: Sequence[SeriesVolume]) -> np.ndarray:
    """The reference volume then each other series resampled onto it: (C, H, W, D) float32."""
    channels = [reference.array.astype(np.float32, copy=False)]
    channels += [resample_onto(volume, reference) for volume in others]
    return np.ascontiguousarray(np.stack(channels))
