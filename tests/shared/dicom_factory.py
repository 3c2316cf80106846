"""Small synthetic DICOM files for the data pipeline tests, built with pydicom in tmp folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import (
    MPEG2MPML,
    BasicTextSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

# Distinctive fake identifiers: tests assert none of them ever reaches a report.
PATIENT_NAME = "Zyxwvut^Quentinella"
PATIENT_ID = "PID-7731-QX"
UID_ROOT = "1.2.826.0.1.3680043.8.498.4242."
STUDY_DESCRIPTION = "SECRET-STUDY-DESC"
ROWS, COLUMNS = 32, 40
SLOPE, INTERCEPT = 2.0, -1024.0


def stored_values(frames: int = 1, seed: int = 0, high: int = 4096) -> np.ndarray:
    """Deterministic unsigned 12-bit stored values, shape (frames, ROWS, COLUMNS)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, high, size=(frames, ROWS, COLUMNS), dtype=np.uint16)


def image_dataset(
    values: np.ndarray,
    *,
    modality: str = "CT",
    photometric: str = "MONOCHROME2",
    series_uid: str | None = None,
    patient_id: str = PATIENT_ID,
) -> Dataset:
    """An uncompressed 16-bit grayscale image (single or multi-frame) with a rescale."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage if modality == "CT" else SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid(UID_ROOT)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = patient_id
    ds.StudyDescription = STUDY_DESCRIPTION
    ds.StudyDate, ds.StudyTime, ds.StudyID = "19990101", "101010", "S-4242"
    ds.SeriesNumber = 3
    ds.StudyInstanceUID = generate_uid(UID_ROOT)
    ds.SeriesInstanceUID = series_uid or generate_uid(UID_ROOT)
    ds.Modality = modality
    ds.InstanceNumber = 7
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
    if values.shape[0] > 1:
        ds.NumberOfFrames = values.shape[0]
    ds.PixelData = values.astype("<u2").tobytes()
    return ds


def write(ds: Dataset, path: Path, *, big_endian: bool = False, implicit: bool = False) -> Path:
    """Write `ds` as a DICOM Part 10 file; optionally explicit VR big endian or implicit VR."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if big_endian:
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        values = np.frombuffer(ds.PixelData, dtype="<u2")
        ds.PixelData = values.astype(">u2").tobytes()
    elif implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    dcmwrite(path, ds, enforce_file_format=True, little_endian=not big_endian, implicit_vr=implicit)
    return path


def write_compressed(ds: Dataset, path: Path, transfer_syntax: str) -> Path:
    """Encode `ds` with pydicom's encoders (RLE natively, JPEG 2000 / JPEG-LS via plugins)."""
    ds.compress(transfer_syntax)
    return write(ds, path)


def write_deflated(ds: Dataset, path: Path) -> Path:
    """Write with the Deflated Explicit VR Little Endian transfer syntax (zlib dataset)."""
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return write(ds, path)


def write_without_preamble(ds: Dataset, path: Path, *, keep_meta: bool = True) -> Path:
    """Write a file with no 128-byte preamble (and optionally no file meta group)."""
    write(ds, path, implicit=not keep_meta)
    data = path.read_bytes()[132:]
    if not keep_meta:
        meta_length = int.from_bytes(data[8:12], "little")
        data = data[12 + meta_length :]
    path.write_bytes(data)
    return path


def structured_report(path: Path) -> Path:
    """A Basic Text SR: a valid DICOM object with no pixel data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = generate_uid(UID_ROOT)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
    ds.SeriesInstanceUID = generate_uid(UID_ROOT)
    ds.Modality = "SR"
    return write(ds, path)


def non_image(path: Path, sop_class: str, modality: str, *, pixels: bool = False) -> Path:
    """A non-image object (RT, presentation state, ...) of `sop_class`.

    With `pixels`, it also holds image pixel attributes and data, to show that the SOP
    class alone decides: an RT Dose grid is not an image for a model.
    """
    ds = image_dataset(stored_values(), modality=modality)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    if not pixels:
        del ds.PixelData
    return write(ds, path)


def rgb_values(seed: int = 0) -> np.ndarray:
    """Deterministic 8-bit RGB samples, shape (ROWS, COLUMNS, 3)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(ROWS, COLUMNS, 3), dtype=np.uint8)


def colour_dataset(samples: np.ndarray, photometric: str = "RGB") -> Dataset:
    """An uncompressed 8-bit three-sample secondary capture (colour-by-pixel)."""
    ds = image_dataset(stored_values(), modality="OT")
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, photometric, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = samples.astype(np.uint8).tobytes()
    return ds


def rgb_image(path: Path, seed: int = 0) -> Path:
    """An RGB secondary capture holding `rgb_values(seed)`."""
    return write(colour_dataset(rgb_values(seed)), path)


def unsupported_colour(path: Path) -> Path:
    """A retired HSV image: a colour space pydicom cannot convert."""
    return write(colour_dataset(rgb_values(), photometric="HSV"), path)


def undecodable(path: Path) -> Path:
    """An image whose transfer syntax (MPEG-2 video) has no pixel decoder in pydicom."""
    ds = image_dataset(stored_values())
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    item = b"\x00" * 16
    ds.PixelData = (
        b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # empty basic offset table
        + b"\xfe\xff\x00\xe0"
        + len(item).to_bytes(4, "little")
        + item
        + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # sequence delimiter
    )
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return write(ds, path)


def dicomdir(source: Path, folder: Path) -> Path:
    """A media folder (DICOMDIR plus a copy of `source`) written by pydicom's FileSet."""
    file_set = FileSet()
    file_set.add(source)
    file_set.write(folder)
    return folder / "DICOMDIR"


def truncated(source: Path, path: Path, keep: float = 0.6) -> Path:
    """A copy of `source` cut short, as an interrupted transfer leaves it."""
    data = source.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def random_bytes(path: Path, size: int = 700) -> Path:
    """A file of random bytes (seeded)."""
    path.write_bytes(np.random.default_rng(1).bytes(size))
    return path


def build_site(folder: Path) -> dict[str, Path]:
    """A PACS-export-like folder with one file of each case; returns paths by case name.

    Usable: plain, RLE, JPEG 2000, JPEG-LS, big endian, implicit VR, no preamble (with and
    without file meta), multi-frame, MONOCHROME1, RGB (11). Skipped: SR, HSV, MPEG-2,
    truncated native, truncated RLE, random bytes, a log file, a duplicate copy (8).
    Ignored: labels.csv, site.json, a hidden folder.
    """
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

    series = generate_uid(UID_ROOT)
    plain = write(image_dataset(stored_values(), series_uid=series), folder / "ct" / "plain.dcm")
    paths = {
        "plain": plain,
        "rle": write_compressed(image_dataset(stored_values()), folder / "c" / "rle", RLELossless),
        "j2k": write_compressed(
            image_dataset(stored_values()), folder / "c" / "j2k", JPEG2000Lossless
        ),
        "jls": write_compressed(
            image_dataset(stored_values()), folder / "c" / "jls", JPEGLSLossless
        ),
        "big_endian": write(image_dataset(stored_values()), folder / "be.dcm", big_endian=True),
        "implicit": write(image_dataset(stored_values()), folder / "implicit.dcm", implicit=True),
        "no_preamble": write_without_preamble(image_dataset(stored_values()), folder / "np1"),
        "raw_dataset": write_without_preamble(
            image_dataset(stored_values()), folder / "np2", keep_meta=False
        ),
        "multiframe": write(image_dataset(stored_values(frames=3)), folder / "mf.dcm"),
        "monochrome1": write(
            image_dataset(stored_values(), modality="CR", photometric="MONOCHROME1"),
            folder / "cr.dcm",
        ),
        "sr": structured_report(folder / "sr.dcm"),
        "rgb": rgb_image(folder / "rgb.dcm"),
        "hsv": unsupported_colour(folder / "hsv.dcm"),
        "mpeg": undecodable(folder / "video.dcm"),
        "random": random_bytes(folder / "random.bin"),
    }
    paths["truncated"] = truncated(plain, folder / "cut" / "plain_cut.dcm")
    paths["truncated_rle"] = truncated(paths["rle"], folder / "cut" / "rle_cut.dcm", keep=0.8)
    paths["duplicate"] = folder / "zz_copy.dcm"
    paths["duplicate"].write_bytes(plain.read_bytes())
    paths["log"] = folder / "export.log"
    paths["log"].write_text(f"exported {PATIENT_NAME}\n")
    (folder / "labels.csv").write_text(f"path,label\n{plain},1\n")
    (folder / "site.json").write_text("{}")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "junk").write_bytes(b"junk")
    return paths
