"""MONAI dictionary transform that loads a `SegCase` into channel-first image and label."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.transforms import MapTransform

from shared.volumes.load import load_case_channels

__all__ = ["LoadSegCased"]


class LoadSegCased(MapTransform):
    """Load ``data[case_key]`` (a `SegCase`) into image, label and spacing entries.

    Adds ``image`` as float32 ``(C, H, W, D)`` (C = 1, or one channel per series of a
    `seg-inputs` case, see `load_case_channels`), ``label`` as ``(1, H, W, D)`` of
    `label_dtype` and ``spacing`` as a float64 array of 3 voxel sizes (mm); see
    `load_volume_case` for the axis convention. Picklable (no open files or readers),
    so it composes with ``Compose`` and caching datasets (``CacheDataset``).

    Parameters
    ----------
    case_key : str
        Key of the `SegCase` in the input dictionary.
    image_key, label_key, spacing_key : str
        Keys written to the output dictionary.
    label_dtype : str
        ``"uint8"`` (default, compact in caches) or ``"int64"`` (loss-ready indices).
    drop_case : bool
        Remove the `SegCase` from the output, as PyTorch's default collate cannot batch
        it; keep it (default) when a later transform needs the case.
    """

    def __init__(
        self,
        case_key: str = "case",
        image_key: str = "image",
        label_key: str = "label",
        spacing_key: str = "spacing",
        label_dtype: str = "uint8",
        drop_case: bool = False,
    ) -> None:
        super().__init__(case_key)
        if label_dtype not in ("uint8", "int64"):
            raise ValueError(f"label_dtype must be 'uint8' or 'int64', got {label_dtype!r}")
        self.case_key = case_key
        self.image_key, self.label_key, self.spacing_key = image_key, label_key, spacing_key
        self.label_dtype = label_dtype
        self.drop_case = drop_case

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return a copy of `data` with the loaded image, label and spacing added."""
        out = dict(data)
        image, label, spacing = load_case_channels(out[self.case_key])
        out[self.image_key] = image
        out[self.label_key] = label[np.newaxis].astype(self.label_dtype, copy=False)
        out[self.spacing_key] = np.asarray(spacing, dtype=np.float64)
        if self.drop_case:
            del out[self.case_key]
        return out
