"""Decode one DICOM image (or one frame) to float32 modality units, higher = brighter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, pixel_array

from shared.dicom.header import HeaderError, read_dataset
from shared.dicom.validate import SUPPORTED_PHOTOMETRIC
from shared.errors import DataError

__all__ = ["load_image"]

_DECODE_ERRORS = (ValueError, RuntimeError, AttributeError, KeyError, IndexError, EOFError)


def load_image(path: Path, frame: int | None = None) -> np.ndarray:
    """Return one grayscale frame of a DICOM file as a float32 (H, W) array.

    The modality LUT (or Rescale Slope/Intercept, also from enhanced multi-frame
    functional groups) is applied, and MONOCHROME1 is inverted within its output range,
    so values are in modality units (e.g. HU) with higher meaning brighter. Compressed
    transfer syntaxes are decoded by pydicom's pixel handlers (pylibjpeg plugins).

    Parameters
    ----------
    path : Path
        DICOM file holding a single-sample grayscale image.
    frame : int, optional
        0-based frame of a multi-frame image; the central frame when None.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (Rows, Columns).

    Raises
    ------
    DataError
        When the file cannot be read or decoded; the message names no path, so the
        caller adds site-local context.
    """
    ds = _read(path)
    if ds.get("PhotometricInterpretation") not in SUPPORTED_PHOTOMETRIC:
        raise DataError("DICOM image is not grayscale (MONOCHROME1/2); skip colour images")
    frames = int(ds.get("NumberOfFrames") or 1)
    index = frames // 2 if frame is None else frame
    if not 0 <= index < frames:
        raise DataError(
            f"frame {frame} is out of range for a DICOM image with {frames} frame(s); "
            f"pass 0..{frames - 1} or None for the central frame"
        )
    try:
        stored = pixel_array(ds, index=index if frames > 1 else None)
    except NotImplementedError as err:
        raise DataError("no decoder for this DICOM transfer syntax; install its plugin") from err
    except _DECODE_ERRORS as err:
        raise DataError("DICOM pixel data is truncated or corrupt; re-export the image") from err
    if stored.ndim != 2:
        raise DataError("DICOM pixel data is not a single-sample 2D frame")
    return _to_modality_units(stored, ds, index).astype(np.float32, copy=False)


def _read(path: Path) -> Dataset:
    """Read the whole dataset, including files without preamble."""
    try:
        with Path(path).open("rb") as fp:
            return read_dataset(fp, stop_before_pixels=False)
    except HeaderError as err:
        raise DataError("file is not a readable DICOM object") from err
    except OSError as err:
        raise DataError(f"DICOM file could not be read ({err.strerror or 'I/O error'})") from err
    except _DECODE_ERRORS as err:
        raise DataError("DICOM file is truncated or corrupt; re-export it") from err


def _to_modality_units(stored: np.ndarray, ds: Dataset, index: int) -> np.ndarray:
    """Apply the modality transform, then invert MONOCHROME1 within the output range."""
    transform = _modality_source(ds, index)
    values = apply_modality_lut(stored, transform).astype(np.float64)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        low, high = _output_range(ds, transform)
        values = (low + high) - values
    return values


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


def _output_range(ds: Dataset, transform: Dataset) -> tuple[float, float]:
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
