"""Reusable DICOM building blocks: deterministic UIDs, common IOD modules and file writing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

__all__ = [
    "EquipmentInfo",
    "PatientInfo",
    "SeriesInfo",
    "StudyInfo",
    "add_image_pixel",
    "add_image_plane",
    "make_uid",
    "new_dataset",
    "write_dataset",
]

AXIAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def make_uid(*parts: object) -> str:
    """Return a UID derived only from ``parts``, so the same inputs give the same UID."""
    return str(generate_uid(entropy_srcs=[str(part) for part in parts]))


@dataclass(frozen=True)
class PatientInfo:
    """The patient a file belongs to.

    With `identity_removed` (the default) the names are pseudonyms and there is no
    birth date; synthetic sites set it to False and write fake but realistic
    identities, as a real PACS export holds, to prove that none leaves a site.
    """

    patient_id: str
    patient_name: str
    sex: str = "O"
    birth_date: str = ""
    identity_removed: bool = True


@dataclass(frozen=True)
class StudyInfo:
    """One imaging study (visit)."""

    uid: str
    date: str
    time: str
    study_id: str
    accession_number: str
    description: str = ""
    referring_physician: str = ""
    operator: str = ""


@dataclass(frozen=True)
class SeriesInfo:
    """One series within a study; images of a series share a frame of reference."""

    uid: str
    number: int
    modality: str
    description: str
    frame_of_reference_uid: str
    body_part: str = "CHEST"
    patient_position: str = "HFS"


@dataclass(frozen=True)
class EquipmentInfo:
    """The (fictional) device that produced the images."""

    manufacturer: str
    model: str
    software_versions: str = "medfleet-synth 1"
    institution_name: str = ""
    institution_address: str = ""
    department: str = ""
    station_name: str = ""


def _add_patient(ds: Dataset, patient: PatientInfo) -> None:
    """Patient module; marked de-identified when only pseudonyms are used."""
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    if patient.identity_removed:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "Synthetic data with pseudonymous identifiers"
    else:
        ds.PatientIdentityRemoved = "NO"


def _add_study(ds: Dataset, study: StudyInfo) -> None:
    """General Study module."""
    ds.StudyInstanceUID = study.uid
    ds.StudyDate = study.date
    ds.StudyTime = study.time
    ds.ReferringPhysicianName = study.referring_physician
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    if study.description:
        ds.StudyDescription = study.description


def _add_series(ds: Dataset, series: SeriesInfo, study: StudyInfo) -> None:
    """General Series and Frame of Reference modules (the series taken at the visit)."""
    ds.Modality = series.modality
    ds.SeriesDate = study.date
    ds.SeriesTime = study.time
    if study.operator:
        ds.OperatorsName = study.operator
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    ds.BodyPartExamined = series.body_part
    ds.PatientPosition = series.patient_position
    ds.FrameOfReferenceUID = series.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""


def _add_equipment(ds: Dataset, equipment: EquipmentInfo) -> None:
    """General Equipment module."""
    ds.Manufacturer = equipment.manufacturer
    ds.ManufacturerModelName = equipment.model
    ds.SoftwareVersions = equipment.software_versions
    optional = {
        "InstitutionName": equipment.institution_name,
        "InstitutionAddress": equipment.institution_address,
        "InstitutionalDepartmentName": equipment.department,
        "StationName": equipment.station_name,
    }
    for keyword, value in optional.items():
        if value:
            setattr(ds, keyword, value)


def new_dataset(
    sop_class_uid: str,
    sop_instance_uid: str,
    patient: PatientInfo,
    study: StudyInfo,
    series: SeriesInfo,
    equipment: EquipmentInfo,
) -> Dataset:
    """Start an instance with the SOP Common, Patient, Study, Series and Equipment modules.

    Parameters
    ----------
    sop_class_uid, sop_instance_uid : str
        What the instance is and its unique identifier.
    patient, study, series, equipment : PatientInfo, StudyInfo, SeriesInfo, EquipmentInfo
        The shared context of the instance.

    Returns
    -------
    pydicom.dataset.Dataset
        A dataset without image modules; add those, then call `write_dataset`.
    """
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    _add_patient(ds, patient)
    _add_study(ds, study)
    _add_series(ds, series, study)
    _add_equipment(ds, equipment)
    return ds


def add_image_plane(
    ds: Dataset,
    position_mm: Sequence[float],
    spacing_mm: float,
    thickness_mm: float,
    orientation: Sequence[float] = AXIAL_ORIENTATION,
) -> None:
    """Image Plane module: where the slice lies in the patient coordinate system."""
    ds.PixelSpacing = [_ds_value(spacing_mm), _ds_value(spacing_mm)]
    ds.ImageOrientationPatient = [_ds_value(v) for v in orientation]
    ds.ImagePositionPatient = [_ds_value(v) for v in position_mm]
    ds.SliceThickness = _ds_value(thickness_mm)
    ds.SliceLocation = _ds_value(position_mm[2])


def add_image_pixel(ds: Dataset, pixels: np.ndarray) -> None:
    """Image Pixel module for a single-frame 16-bit MONOCHROME2 image."""
    if pixels.ndim != 2 or pixels.dtype not in (np.uint16, np.int16):
        raise ValueError("pixels must be a 2D uint16 or int16 array")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(n) for n in pixels.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()


def write_dataset(ds: Dataset, path: Path) -> None:
    """Write ``ds`` as a DICOM Part 10 file in Explicit VR Little Endian."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _ds_value(value: float) -> str:
    """Format a number for a Decimal String (at most 16 characters, no exponent)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
