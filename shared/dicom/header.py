"""Header-only reading of one DICOM file, with cheap checks that the file is complete."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from shared.dicom.reasons import SkipReason

__all__ = [
    "Header",
    "HeaderError",
    "PixelElement",
    "read_dataset",
    "read_header",
    "transfer_syntax",
]

PIXEL_DATA = 0x7FE00010
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
# First element groups of a dataset written without preamble: file meta or identifying.
_RAW_START_GROUPS = {0x0002, 0x0008}


class HeaderError(Exception):
    """A file cannot be indexed; `reason` says why (internal, never leaves this package)."""

    def __init__(self, reason: SkipReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class PixelElement:
    """Where a file's pixel data element is, found without reading its value.

    `length` is None for encapsulated (compressed) data, whose `fragments` are counted;
    `vr` is the explicit value representation, empty in implicit VR files.
    """

    tag: int
    length: int | None
    fragments: int
    vr: str = ""


@dataclass(frozen=True)
class Header:
    """A dataset read up to its pixel data, and what follows it."""

    dataset: Dataset
    pixel_data: PixelElement | None


def read_dataset(fp: BinaryIO, stop_before_pixels: bool) -> Dataset:
    """Read a dataset from `fp`, accepting files without the 128-byte preamble.

    Raises
    ------
    HeaderError
        With ``NOT_DICOM`` when the bytes do not start like DICOM.
    """
    try:
        ds = dcmread(fp, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        fp.seek(0)
        if not _looks_like_raw_dataset(fp.read(8)):
            raise HeaderError(SkipReason.NOT_DICOM) from None
        fp.seek(0)
        ds = dcmread(fp, stop_before_pixels=stop_before_pixels, force=True)
    if len(ds) == 0:
        # A file meta group with nothing after it is a file cut short.
        has_meta = len(getattr(ds, "file_meta", None) or ()) > 0
        raise HeaderError(SkipReason.TRUNCATED if has_meta else SkipReason.NOT_DICOM)
    _set_transfer_syntax(ds)
    return ds


def read_header(path: Path) -> Header:
    """Read the header of `path` without its pixel values, checking the file is whole.

    Raises
    ------
    HeaderError
        ``NOT_DICOM`` or ``TRUNCATED`` when the file cannot be indexed.
    OSError
        When the file cannot be opened or read.
    """
    size = path.stat().st_size
    with path.open("rb") as fp:
        try:
            ds = read_dataset(fp, stop_before_pixels=True)
            _check_meta_complete(ds, size)
            # Deflated files are inflated into a buffer: the stop position is in there.
            stream = getattr(ds, "buffer", None) or fp
            position = stream.tell()
            end = stream.seek(0, 2)
            stream.seek(position)
            pixel = _probe_pixel_element(stream, end, ds.original_encoding)
        except (EOFError, ValueError, struct.error, IndexError, KeyError) as err:
            raise HeaderError(SkipReason.TRUNCATED) from err
    if pixel is None:
        _check_last_element_complete(ds, end)
    return Header(ds, pixel)


def _looks_like_raw_dataset(head: bytes) -> bool:
    """Whether `head` starts like a dataset written without preamble (LE or BE)."""
    if len(head) < 8:
        return False
    group_le, group_be = struct.unpack("<H", head[:2])[0], struct.unpack(">H", head[:2])[0]
    return group_le in _RAW_START_GROUPS or group_be == 0x0008


def _set_transfer_syntax(ds: Dataset) -> None:
    """Record the encoding pydicom guessed when a file has no Transfer Syntax UID."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if meta.get("TransferSyntaxUID"):
        return
    implicit, little = ds.original_encoding
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _check_meta_complete(ds: Dataset, size: int) -> None:
    """Raise TRUNCATED when the file is shorter than its file meta group claims."""
    meta = ds.file_meta
    if "FileMetaInformationGroupLength" not in meta:
        return
    preamble = 132 if getattr(ds, "preamble", None) is not None else 0
    if size < preamble + 12 + int(meta.FileMetaInformationGroupLength):
        raise HeaderError(SkipReason.TRUNCATED)


def _probe_pixel_element(stream: BinaryIO, end: int, encoding: tuple) -> PixelElement | None:
    """Read the element header at the stream position; walk fragments if encapsulated."""
    implicit, little = encoding
    order = "<" if little else ">"
    head = stream.read(8)
    if len(head) < 8:
        return None
    group, element = struct.unpack(f"{order}HH", head[:4])
    tag = group << 16 | element
    vr = "" if implicit else head[4:6].decode("latin-1")
    if implicit:
        length = struct.unpack(f"{order}L", head[4:8])[0]
    elif vr in ("OB", "OW", "OF", "OD", "UN"):
        length = struct.unpack(f"{order}L", stream.read(4))[0]
    else:
        length = struct.unpack(f"{order}H", head[6:8])[0]
    if length != _UNDEFINED:
        if stream.tell() + length > end:
            raise HeaderError(SkipReason.TRUNCATED)
        return PixelElement(tag, length, 0, vr)
    return PixelElement(tag, None, _count_fragments(stream, end), vr)


def _count_fragments(stream: BinaryIO, end: int) -> int:
    """Walk encapsulated items (always little endian) to the sequence delimiter."""
    items = 0
    while True:
        head = stream.read(8)
        if len(head) < 8:
            raise HeaderError(SkipReason.TRUNCATED)
        group, element, length = struct.unpack("<HHL", head)
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            return max(items - 1, 0)  # the first item is the basic offset table
        if tag != _ITEM or stream.tell() + length > end:
            raise HeaderError(SkipReason.TRUNCATED)
        stream.seek(length, 1)
        items += 1


def _check_last_element_complete(ds: Dataset, end: int) -> None:
    """Raise TRUNCATED unless the last element read ends exactly at the end of the file.

    pydicom reads short values and partial element headers silently, so a header cut
    short would otherwise look like a complete non-image object.
    """
    if len(ds) == 0:
        return
    last = ds.get_item(max(ds.keys()))
    if not isinstance(last, RawDataElement) or last.length == _UNDEFINED:
        return
    if last.value_tell + last.length != end:
        raise HeaderError(SkipReason.TRUNCATED)


def transfer_syntax(ds: Dataset) -> UID:
    """Return the dataset's transfer syntax (always set by `read_dataset`)."""
    return UID(ds.file_meta.TransferSyntaxUID)
