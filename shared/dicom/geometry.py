"""Header checks of an image's pixel module, made before any pixel value is decoded."""

from __future__ import annotations

import math

from pydicom.dataset import Dataset
from pydicom.pixels.utils import get_expected_length

from shared.dicom.photometric import PALETTE, SUPPORTED_PHOTOMETRIC, has_palette, samples_per_pixel
from shared.dicom.reasons import SkipReason

__all__ = [
    "MAX_FRAME_PIXELS",
    "check_fragments",
    "check_native_length",
    "check_pixel_module",
    "frame_count",
]

# Largest frame decoded (8192 x 8192): above digital mammography (about 4700 x 5900) and
# far below a header's 65535 x 65535, whose frame alone would take 8 GiB to decode.
MAX_FRAME_PIXELS = 2**26
_GREY_BITS = frozenset({1, 8, 16, 32})
_COLOUR_BITS = frozenset({8, 16})


def frame_count(ds: Dataset) -> int:
    """Return Number of Frames, 1 when absent."""
    return int(ds.get("NumberOfFrames") or 1)


def check_pixel_module(ds: Dataset) -> SkipReason | None:
    """Check photometry, sample layout, bit depth and dimensions from the header alone.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        Header holding the Image Pixel module (pixel data need not be loaded).

    Returns
    -------
    SkipReason or None
        The first failing check, or None when decoding one frame is safe to try.

    Raises
    ------
    ValueError, TypeError
        When an attribute holds a malformed value; callers count that as invalid.
    """
    photometric = ds.PhotometricInterpretation
    if photometric not in SUPPORTED_PHOTOMETRIC:
        return SkipReason.UNSUPPORTED_PHOTOMETRIC
    if photometric == PALETTE and not has_palette(ds):
        return SkipReason.MISSING_ATTRIBUTE
    samples = int(ds.SamplesPerPixel)
    if samples != samples_per_pixel(photometric):
        return SkipReason.INVALID_ATTRIBUTE
    if samples == 3 and ds.get("PlanarConfiguration") not in (0, 1):
        return SkipReason.INVALID_ATTRIBUTE
    allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    allowed_bits = _GREY_BITS if samples == 1 and photometric != PALETTE else _COLOUR_BITS
    if allocated not in allowed_bits or not 1 <= stored <= allocated:
        return SkipReason.INVALID_ATTRIBUTE
    if ds.PixelRepresentation not in (0, 1):
        return SkipReason.INVALID_ATTRIBUTE
    if samples == 3 and ds.PixelRepresentation != 0:  # PS3.3 C.7.6.3.1.2: colour is unsigned
        return SkipReason.INVALID_ATTRIBUTE
    rows, columns = int(ds.Rows), int(ds.Columns)
    if min(rows, columns, frame_count(ds)) < 1:
        return SkipReason.INVALID_ATTRIBUTE
    if rows * columns > MAX_FRAME_PIXELS:
        return SkipReason.IMAGE_TOO_LARGE
    return None


def check_native_length(ds: Dataset, length: int) -> SkipReason | None:
    """Check uncompressed pixel data holds exactly the frames the header describes.

    A trailing pad byte is allowed; data short of the frames, or with room for at least
    one more frame, means Rows, Columns or Number of Frames is wrong.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        Header that passed `check_pixel_module`.
    length : int
        Length in bytes of the Pixel Data value.

    Returns
    -------
    SkipReason or None
        ``PIXEL_DATA_MISMATCH``, or None when the length fits.
    """
    expected = int(get_expected_length(ds))
    frame = expected / frame_count(ds)
    if length < expected or length >= expected + max(math.ceil(frame), 2):
        return SkipReason.PIXEL_DATA_MISMATCH
    return None


def check_fragments(ds: Dataset, fragments: int) -> SkipReason | None:
    """Check encapsulated pixel data has a fragment for every frame.

    A frame may span fragments, but a fragment never holds two frames.
    """
    return SkipReason.PIXEL_DATA_MISMATCH if fragments < frame_count(ds) else None
