"""MONAI transform chains of the segmentation task: volume loading, patches, augmentation."""

from __future__ import annotations

from typing import Any

import torch
from monai.transforms import (
    Compose,
    EnsureTyped,
    FgBgToIndicesd,
    NormalizeIntensityd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    SelectItemsd,
    SpatialPadd,
    SqueezeDimd,
)

from shared.tasks.seg_options import SegOptions
from shared.volumes import LoadSegCased

__all__ = ["eval_transforms", "train_transforms"]

KEYS = ("image", "label")


def _load_and_normalise() -> list[Any]:
    return [
        LoadSegCased(case_key="case", drop_case=True),
        # Z-score over the non-zero (body) voxels: MR intensities have no absolute scale
        # and differ between scanners, so each volume is normalised on its own.
        NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
    ]


def eval_transforms() -> Compose:
    """Whole volumes for sliding-window evaluation: image, label and spacing."""
    steps = _load_and_normalise() + [
        SelectItemsd(keys=(*KEYS, "spacing")),
        EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
        EnsureTyped(keys="label", dtype=torch.long, track_meta=False),
    ]
    return Compose(steps)


def train_transforms(options: SegOptions) -> Compose:
    """Random patches (or axial slices in 2D) with light augmentation.

    The deterministic head (load, normalise, pad, foreground indices) is what a
    caching dataset keeps; everything from the first random crop runs every epoch.
    """
    patch = options.patch_size
    if options.spatial_dims == 3:
        pad, crop = (patch, patch, patch), (patch, patch, patch)
    else:
        # An axial slice is a (P, P, 1) crop whose last axis is then squeezed away.
        pad, crop = (patch, patch, -1), (patch, patch, 1)
    steps = _load_and_normalise() + [
        SelectItemsd(keys=KEYS),
        EnsureTyped(keys=KEYS, track_meta=False),
        SpatialPadd(keys=KEYS, spatial_size=pad),
        # Precomputed once per case (and cached) so each epoch's crops stay cheap.
        FgBgToIndicesd(keys="label"),
        RandCropByPosNegLabeld(
            keys=KEYS,
            label_key="label",
            spatial_size=crop,
            pos=2.0,
            neg=1.0,
            num_samples=options.samples_per_case,
            fg_indices_key="label_fg_indices",
            bg_indices_key="label_bg_indices",
        ),
    ]
    if options.spatial_dims == 2:
        steps.append(SqueezeDimd(keys=KEYS, dim=-1))
    steps += [
        RandFlipd(keys=KEYS, prob=0.5, spatial_axis=0),
        RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        RandGaussianNoised(keys="image", prob=0.15, std=0.05),
        SelectItemsd(keys=KEYS),
        EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
        EnsureTyped(keys="label", dtype=torch.long, track_meta=False),
    ]
    return Compose(steps)
