"""The record of one usable image instance, and the opaque patient key used for splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ImageRecord", "patient_key"]


@dataclass(frozen=True)
class ImageRecord:
    """One usable image instance (grey-scale or colour) found under a site's data folder.

    Records stay on the site: `path` and the UIDs are site-local facts. `patient_key`
    is a pseudonymous hash, fit for grouping images by patient in train/val splits only.

    Attributes
    ----------
    path : Path
        File holding the instance.
    sop_instance_uid, series_instance_uid : str
        Instance and series identifiers.
    patient_key : str
        Opaque hash of PatientID (see `patient_key`), never the raw identifier.
    modality : str
        DICOM modality code such as ``"CT"`` (``"unknown"`` when absent or malformed).
    rows, columns, frames : int
        Image geometry; `frames` is 1 for single-frame images.
    instance_number : int or None
        Position in the series when the header gives one.
    """

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    patient_key: str
    modality: str
    rows: int
    columns: int
    frames: int
    instance_number: int | None


def patient_key(patient_id: str, study_uid: str = "", series_uid: str = "") -> str:
    """Return a stable opaque key grouping a patient's images for patient-level splits.

    Parameters
    ----------
    patient_id : str
        PatientID; when empty the study (else the series) stands in for the patient, so
        images of one study never land on both sides of a split.
    study_uid, series_uid : str
        Fallback grouping identifiers.

    Returns
    -------
    str
        16 hex characters. A keyed BLAKE2b hash, but patient IDs are guessable, so the key
        is pseudonymous, not anonymous: it must stay on the site like the ID itself.
    """
    if patient_id:
        source = f"patient:{patient_id}"
    elif study_uid:
        source = f"study:{study_uid}"
    else:
        source = f"series:{series_uid}"
    digest = hashlib.blake2b(source.encode(), digest_size=8, person=b"medfleet-pkey")
    return digest.hexdigest()
