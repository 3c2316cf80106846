"""Value transforms of stored pixel values: modality LUT or rescale, palette lookup."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut

from shared.dicom.geometry import frame_count
from shared.dicom.photometric import GREYSCALE, PALETTE
from shared.dicom.reasons import SkipReason

__all__ = ["check_value_transform", "output_range", "to_modality_units"]


def to_modality_units(stored: np.ndarray, ds: Dataset, index: int) -> np.ndarray:
    """Apply the modality transform, then invert MONOCHROME1 within the output range."""
    transform = _modality_source(ds, index)
    values = apply_modality_lut(stored, transform).astype(np.float64)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        low, high = output_range(ds, transform)
        values = (low + high) - values
    return values


def check_value_transform(ds: Dataset) -> SkipReason | None:
    """Check from the header that the loader's value transform works and stays finite.

    Grey-scale images map the extremes of their stored range through the modality
    transform of the central frame; palette images look up one pixel.

    Returns
    -------
    SkipReason or None
        ``INVALID_ATTRIBUTE`` when the transform fails or gives non-finite values.
    """
    photometric = ds.PhotometricInterpretation
    try:
        if photometric in GREYSCALE:
            transform = _modality_source(ds, frame_count(ds) // 2)
            for name in ("RescaleSlope", "RescaleIntercept"):
                if name in transform:
                    float(transform[name].value)  # one number, not several
            values = np.array(output_range(ds, transform))
        elif photometric == PALETTE:
            values = apply_color_lut(np.zeros((1, 1), dtype=np.uint8), ds).astype(np.float64)
        else:
            return None
    except Exception:  # noqa: BLE001 - lazily parsed values of a damaged file raise anything
        return SkipReason.INVALID_ATTRIBUTE
    return None if np.isfinite(values).all() else SkipReason.INVALID_ATTRIBUTE


def _modality_source(ds: Dataset, index: int) -> Dataset:
    """Return the dataset holding the modality transform of frame `index`.

    Enhanced multi-frame objects keep Rescale Slope/Intercept in the per-frame or
    shared functional groups rather than at the top level.
    """
    if "ModalityLUTSequence" in ds or "RescaleSlope" in ds:
        return ds
    for name, item in (
        ("PerFrameFunctionalGroupsSequence", index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        groups = ds.get(name)
        if groups and len(groups) > item and "PixelValueTransformationSequence" in groups[item]:
            return groups[item].PixelValueTransformationSequence[0]
    return ds


def output_range(ds: Dataset, transform: Dataset) -> tuple[float, float]:
    """Lowest and highest value the modality transform can produce for this image."""
    bits = int(ds.BitsStored)
    if ds.PixelRepresentation == 1:
        stored = np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1], dtype=np.int64)
    else:
        stored = np.array([0, 2**bits - 1], dtype=np.int64)
    if "ModalityLUTSequence" in transform and bits <= 16:
        lut = apply_modality_lut(np.arange(stored[0], stored[1] + 1), transform)
        return float(lut.min()), float(lut.max())
    mapped = apply_modality_lut(stored, transform).astype(np.float64)
    return float(mapped.min()), float(mapped.max())
