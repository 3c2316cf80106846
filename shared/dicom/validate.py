"""Decide from its header whether one DICOM file is a usable image for a model."""

from __future__ import annotations

import re
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from shared.dicom.geometry import (
    check_fragments,
    check_native_length,
    check_pixel_module,
    frame_count,
)
from shared.dicom.header import PIXEL_DATA, Header, transfer_syntax
from shared.dicom.kinds import ObjectKind, object_kind
from shared.dicom.modality import check_value_transform
from shared.dicom.reasons import SkipReason
from shared.dicom.records import ImageRecord, patient_key

__all__ = ["INDEXED_KINDS", "REQUIRED_ATTRIBUTES", "classify"]

# Object kinds that become ImageRecords; other kinds are skipped as non-image objects.
INDEXED_KINDS = frozenset({ObjectKind.IMAGE})
REQUIRED_ATTRIBUTES = (
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
)
# Value representations Pixel Data may have ("" when the file has implicit VR).
_PIXEL_VRS = frozenset({"", "OB", "OW", "UN"})
# Modality is a Code String: short upper-case code; anything else is reported as unknown.
_MODALITY_PATTERN = re.compile(r"[A-Z0-9_]{1,16}")


def classify(path: Path, header: Header) -> ImageRecord | SkipReason:
    """Return the image record of a file, or the reason it cannot feed a model.

    Parameters
    ----------
    path : Path
        The file, stored in the record.
    header : Header
        Its header, as read by `read_header`.

    Returns
    -------
    ImageRecord or SkipReason
        The record when every check passes, else the first failing check's reason.
    """
    ds, pixel = header.dataset, header.pixel_data
    has_pixels = pixel is not None and pixel.tag == PIXEL_DATA
    kind = object_kind(ds, has_pixels)
    if kind is ObjectKind.DIRECTORY or "DirectoryRecordSequence" in ds:
        return SkipReason.DICOMDIR
    if kind not in INDEXED_KINDS or not has_pixels:
        return SkipReason.NON_IMAGE
    if any(ds.get(name) in (None, "") for name in REQUIRED_ATTRIBUTES):
        return SkipReason.MISSING_ATTRIBUTE
    try:
        return _check_image(path, ds, header)
    except (ValueError, TypeError, AttributeError, OverflowError):
        # Malformed values (e.g. "abc" in an integer string) fail conversion.
        return SkipReason.INVALID_ATTRIBUTE


def _check_image(path: Path, ds: Dataset, header: Header) -> ImageRecord | SkipReason:
    """Check the pixel module, decoder and pixel data length; build the record."""
    problem = check_pixel_module(ds) or check_value_transform(ds)
    if problem is not None:
        return problem
    if not _decoder_available(ds):
        return SkipReason.UNSUPPORTED_TRANSFER_SYNTAX
    pixel = header.pixel_data
    assert pixel is not None  # checked by the caller
    # Encapsulated data under a native transfer syntax (or the reverse) cannot decode.
    encapsulated = transfer_syntax(ds).is_encapsulated
    if pixel.vr not in _PIXEL_VRS or (pixel.length is None) != encapsulated:
        return SkipReason.INVALID_ATTRIBUTE
    if pixel.length is None:
        problem = check_fragments(ds, pixel.fragments)
    else:
        problem = check_native_length(ds, pixel.length)
    return problem or _record(path, ds, frame_count(ds))


def _decoder_available(ds: Dataset) -> bool:
    """Whether pydicom has a working decoder (plugin installed) for the transfer syntax."""
    try:
        return bool(get_decoder(transfer_syntax(ds)).is_available)
    except NotImplementedError:
        return False


def _record(path: Path, ds: Dataset, frames: int) -> ImageRecord:
    """Build the record of a validated image dataset."""
    modality = str(ds.get("Modality") or "")
    number = ds.get("InstanceNumber")
    series_uid = str(ds.SeriesInstanceUID)
    return ImageRecord(
        path=path,
        sop_instance_uid=str(ds.SOPInstanceUID),
        series_instance_uid=series_uid,
        patient_key=patient_key(
            str(ds.get("PatientID") or ""), str(ds.get("StudyInstanceUID") or ""), series_uid
        ),
        modality=modality if _MODALITY_PATTERN.fullmatch(modality) else "unknown",
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        frames=frames,
        instance_number=int(number) if number not in (None, "") else None,
    )
