"""MONAI transforms that load DICOM files through `load_image` (channel-first float32)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from shared.dicom.image import load_image

__all__ = ["LoadDicomImage", "LoadDicomImaged"]


class LoadDicomImage(Transform):
    """Load one DICOM file as a ``(channels, H, W)`` float32 array.

    Grey-scale images are in modality units; colour images are their luminance (one
    channel) or RGB (three channels), see `load_image`.

    Parameters
    ----------
    frame : int, optional
        Frame of multi-frame files; the central frame when None.
    channels : int
        1 (grey-scale or luminance, the default) or 3 (RGB; grey-scale repeated).
    """

    def __init__(self, frame: int | None = None, channels: int = 1) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.frame = frame
        self.channels = channels

    def __call__(self, path: str | Path) -> np.ndarray:
        """Return the image at `path` with a leading channel axis."""
        image = load_image(Path(path), self.frame, self.channels)
        return image[np.newaxis] if self.channels == 1 else image


class LoadDicomImaged(MapTransform):
    """Dictionary wrapper of `LoadDicomImage`: replaces the path under each key by its image.

    Composes with ``monai.transforms.Compose`` and caching datasets (``CacheDataset``,
    ``PersistentDataset``), whose cache keys are the input dictionaries of paths.

    Parameters
    ----------
    keys : KeysCollection
        Keys whose values are DICOM file paths.
    frame : int, optional
        Frame of multi-frame files; the central frame when None.
    allow_missing_keys : bool
        Do not raise when a key is absent from the dictionary.
    channels : int
        1 (grey-scale or luminance, the default) or 3 (RGB; grey-scale repeated).
    """

    def __init__(
        self,
        keys: KeysCollection,
        frame: int | None = None,
        allow_missing_keys: bool = False,
        channels: int = 1,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadDicomImage(frame, channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return a copy of `data` with every key's path replaced by its image."""
        out = dict(data)
        for key in self.key_iterator(out):
            out[key] = self.loader(out[key])
        return out
