"""Photometric interpretations the pipeline reads, and their conversion to RGB or luminance."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, convert_color_space

from shared.errors import DataError

__all__ = [
    "COLOUR",
    "GREYSCALE",
    "PALETTE",
    "PALETTE_ATTRIBUTES",
    "SUPPORTED_PHOTOMETRIC",
    "has_palette",
    "luminance",
    "samples_per_pixel",
    "to_rgb",
]

GREYSCALE = frozenset({"MONOCHROME1", "MONOCHROME2"})
# Three-sample colour spaces. YBR_ICT/YBR_RCT only occur in JPEG 2000, whose decoder
# undoes the component transform and hands back RGB.
COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
PALETTE = "PALETTE COLOR"
SUPPORTED_PHOTOMETRIC = GREYSCALE | COLOUR | {PALETTE}
# A palette image needs each channel's LUT descriptor and its (plain or segmented) data.
PALETTE_ATTRIBUTES = tuple(
    f"{colour}PaletteColorLookupTableDescriptor" for colour in ("Red", "Green", "Blue")
)
_PALETTE_DATA = ("PaletteColorLookupTableData", "SegmentedPaletteColorLookupTableData")
# ITU-R BT.601 luma weights, the Y of YBR_FULL.
_BT601 = np.array([0.299, 0.587, 0.114])


def samples_per_pixel(photometric: str) -> int:
    """Return the Samples per Pixel a supported photometric interpretation requires."""
    return 3 if photometric in COLOUR else 1


def has_palette(ds: Dataset) -> bool:
    """Whether `ds` carries the three palette colour lookup tables it needs."""
    if any(ds.get(name) in (None, "") for name in PALETTE_ATTRIBUTES):
        return False
    return all(
        any(f"{colour}{data}" in ds for data in _PALETTE_DATA)
        for colour in ("Red", "Green", "Blue")
    )


def to_rgb(decoded: np.ndarray, photometric: str, ds: Dataset) -> np.ndarray:
    """Convert one decoded colour or palette frame to RGB with pydicom's handlers.

    Parameters
    ----------
    decoded : numpy.ndarray
        (Rows, Columns, 3) samples, or (Rows, Columns) palette indices.
    photometric : str
        Colour space of `decoded` as the decoder returned it (it may already be RGB).
    ds : pydicom.dataset.Dataset
        The image's dataset, holding the palette lookup tables.

    Returns
    -------
    numpy.ndarray
        (Rows, Columns, 3) RGB values in the range of the samples (or of the palette).

    Raises
    ------
    DataError
        When the colour space has no conversion to RGB.
    """
    if photometric == PALETTE:
        return apply_color_lut(decoded, ds)
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        return convert_color_space(decoded, photometric, "RGB")
    if photometric == "RGB":
        return decoded
    raise DataError("DICOM colour image could not be converted to RGB; re-export it as RGB")


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Return the ITU-R BT.601 luminance (float64) of an (..., 3) RGB array."""
    return rgb.astype(np.float64) @ _BT601
