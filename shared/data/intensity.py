"""Intensity scaling that follows the image's modality: HU window for CT, percentiles else."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, ScaleIntensityRange, ScaleIntensityRangePercentiles

__all__ = ["ScaleByModalityd"]


class ScaleByModalityd(MapTransform):
    """Scale images to [0, 1] by the item's `modality` entry.

    CT is calibrated in Hounsfield units, so a fixed window keeps tissue meaning across
    sites (their scanner offsets and gains remain, as in real federations). Modalities
    without absolute units (MR, CR, ...) are scaled by their own 0.5-99.5 percentiles.

    Parameters
    ----------
    keys : KeysCollection
        Image keys to scale.
    ct_window : tuple of float
        HU range mapped to [0, 1] for CT (default: a lung window).
    modality_key : str
        Item key holding the DICOM Modality.
    """

    def __init__(
        self,
        keys: KeysCollection,
        ct_window: tuple[float, float] = (-1000.0, 400.0),
        modality_key: str = "modality",
    ) -> None:
        super().__init__(keys)
        if ct_window[0] >= ct_window[1]:
            raise ValueError(f"ct_window must be (low, high) with low < high, got {ct_window}")
        self.modality_key = modality_key
        self.ct = ScaleIntensityRange(ct_window[0], ct_window[1], 0.0, 1.0, clip=True)
        self.other = ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        scale = self.ct if d.get(self.modality_key) == "CT" else self.other
        for key in self.key_iterator(d):
            d[key] = scale(d[key])
        return d
