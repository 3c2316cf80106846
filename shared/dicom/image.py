"""Decode one frame of a DICOM image: grey-scale in modality units, colour as luminance or RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import parse_fragments
from pydicom.pixels import as_pixel_options, get_decoder

from shared.dicom.geometry import (
    check_fragments,
    check_native_length,
    check_pixel_module,
    frame_count,
)
from shared.dicom.header import HeaderError, read_dataset, transfer_syntax
from shared.dicom.modality import check_value_transform, to_modality_units
from shared.dicom.photometric import GREYSCALE, luminance, samples_per_pixel, to_rgb
from shared.dicom.quiet import quiet_pydicom
from shared.dicom.reasons import SkipReason
from shared.errors import DataError

__all__ = ["load_image"]

_DECODE_ERRORS = (ValueError, RuntimeError, AttributeError, KeyError, IndexError, EOFError)
_CHANNELS = (1, 3)


def load_image(path: Path, frame: int | None = None, channels: int = 1) -> np.ndarray:
    """Return one frame of a DICOM image as float32, grey-scale or three channels.

    Grey-scale images get the modality LUT (or Rescale Slope/Intercept, also from
    enhanced multi-frame functional groups), and MONOCHROME1 is inverted within its
    output range, so values are in modality units (e.g. HU) with higher meaning brighter.
    Colour images (RGB, YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT) and PALETTE COLOR are
    converted to RGB by pydicom's colour-space and palette handlers; one channel is then
    their ITU-R BT.601 luminance. Compressed transfer syntaxes are decoded by pydicom's
    pixel handlers (pylibjpeg plugins). The header is checked first, so absurd
    dimensions are refused before any pixel buffer is allocated.

    Parameters
    ----------
    path : Path
        DICOM image file.
    frame : int, optional
        0-based frame of a multi-frame image; the central frame when None.
    channels : int
        1: a (Rows, Columns) grey-scale or luminance array. 3: (3, Rows, Columns) RGB,
        grey-scale images repeated on the three channels.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (Rows, Columns), or (3, Rows, Columns) when `channels` is 3.

    Raises
    ------
    DataError
        When the file cannot be read or decoded; the message names no path, so the
        caller adds site-local context.
    ValueError
        When `channels` is neither 1 nor 3.
    """
    if channels not in _CHANNELS:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    with quiet_pydicom():
        ds = _read(path)
        try:
            return _image(ds, frame, channels)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - lazily parsed values of a damaged file
            raise DataError("DICOM image attributes are malformed; re-export the image") from err


def _image(ds: Dataset, frame: int | None, channels: int) -> np.ndarray:
    """Check, decode and convert one frame of a read dataset."""
    _check(ds)
    frames = frame_count(ds)
    index = frames // 2 if frame is None else frame
    if not 0 <= index < frames:
        raise DataError(
            f"frame {frame} is out of range for a DICOM image with {frames} frame(s); "
            f"pass 0..{frames - 1} or None for the central frame"
        )
    decoded, photometric = _decode(ds, index if frames > 1 else None)
    if ds.PhotometricInterpretation in GREYSCALE:
        grey = to_modality_units(decoded, ds, index).astype(np.float32, copy=False)
        return grey if channels == 1 else np.repeat(grey[np.newaxis], 3, axis=0)
    rgb = to_rgb(decoded, photometric, ds)
    if channels == 1:
        return luminance(rgb).astype(np.float32)
    return np.moveaxis(rgb, -1, 0).astype(np.float32)


def _read(path: Path) -> Dataset:
    """Read the whole dataset, including files without preamble."""
    try:
        with Path(path).open("rb") as fp:
            return read_dataset(fp, stop_before_pixels=False)
    except HeaderError as err:
        raise DataError("file is not a readable DICOM object") from err
    except OSError as err:
        raise DataError(f"DICOM file could not be read ({err.strerror or 'I/O error'})") from err
    except Exception as err:  # noqa: BLE001 - any parser failure on a damaged file
        raise DataError("DICOM file is truncated or corrupt; re-export it") from err


def _check(ds: Dataset) -> None:
    """Run the indexer's header checks, so direct callers get the same refusals."""
    try:
        problem = check_pixel_module(ds) or _check_pixel_data(ds) or check_value_transform(ds)
    except (*_DECODE_ERRORS, TypeError, OverflowError) as err:
        raise DataError("DICOM image attributes are missing or malformed") from err
    if problem is not None:
        raise DataError(f"DICOM image cannot be used: {problem.value}")


def _check_pixel_data(ds: Dataset) -> SkipReason | None:
    """Check the Pixel Data element fits the transfer syntax and the pixel module."""
    if "PixelData" not in ds:
        return SkipReason.NON_IMAGE
    encapsulated = transfer_syntax(ds).is_encapsulated
    element = ds["PixelData"]
    if (
        not isinstance(element.value, bytes | bytearray)  # a Pixel Data of another VR
        or element.is_undefined_length != encapsulated  # the transfer syntax is wrong
    ):
        return SkipReason.INVALID_ATTRIBUTE
    if encapsulated:
        return check_fragments(ds, parse_fragments(element.value)[0] - 1)
    return check_native_length(ds, len(element.value))


def _decode(ds: Dataset, index: int | None) -> tuple[np.ndarray, str]:
    """Decode one frame; return it with the colour space the decoder left it in."""
    try:
        decoder = get_decoder(transfer_syntax(ds))
        decoded, meta = decoder.as_array(ds, index=index, raw=True, **as_pixel_options(ds))
    except NotImplementedError as err:
        raise DataError("no decoder for this DICOM transfer syntax; install its plugin") from err
    except Exception as err:  # noqa: BLE001 - decoders of damaged data raise anything
        raise DataError("DICOM pixel data is truncated or corrupt; re-export the image") from err
    photometric = str(meta.get("photometric_interpretation", ds.PhotometricInterpretation))
    samples = samples_per_pixel(ds.PhotometricInterpretation)
    expected = (int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    if decoded.shape != expected:
        raise DataError("DICOM pixel data does not match Rows/Columns; re-export the image")
    return decoded, photometric
