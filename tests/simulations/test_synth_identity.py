"""Synthetic sites carry realistic identifying headers, unique per site, known from the seed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest

from simulations.synth import generate_sites
from simulations.synth.identity import MAX_UNIQUE_PATIENTS, identifying_values, patient_identity

#: Header keywords a PACS export holds that identify a patient, visit or hospital.
IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
    "ReferringPhysicianName",
    "OperatorsName",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "ContentDate",
    "ContentTime",
)
#: sha256 over every file's path, PixelData, SOP Instance UID, PatientID and position, and
#: labels.csv/lesions.csv, of 3 sites at seed 7, scale 0.1, as generated before the
#: generator wrote identities: what the models learn from must not have changed.
PIXELS_BEFORE_IDENTITIES = {
    "classification": "aac28cf921591e73e8d3ad9798886fdb214ae96f05c08aac03215f508521a6dd",
    "segmentation": "b64b5c3b6e37b7b7f97ce8cbf6b5f8b7c6b4acfd09a217ca7d6bcfd4fadcfd50",
}


def _headers(site: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(site.rglob("*.dcm"))]


def _written_values(site: Path) -> set[str]:
    return {
        str(ds.get(k))
        for ds in _headers(site)
        for k in IDENTIFYING
        if k in ds and str(ds.get(k)) and ds.Modality != "SEG"
    }


@pytest.mark.parametrize(
    "task", ["classification", "segmentation", "segmentation-t1t2", "detection", "series"]
)
def test_headers_hold_exactly_the_values_known_from_the_seed(tmp_path: Path, task: str) -> None:
    # Prepare
    sites = generate_sites(tmp_path, n_sites=3, seed=5, task=task, scale=0.1)

    # Execute
    known = identifying_values(tmp_path)

    # Assert: every identifying tag is filled, and the function lists exactly what was written
    for site in sites:
        for ds in _headers(site):
            if ds.Modality != "SEG":
                assert all(str(ds.get(k, "")) for k in IDENTIFYING), site.name
                assert ds.PatientIdentityRemoved == "NO"
        assert _written_values(site) == set(known[site.name])
    # Names, IDs, accession numbers and hospital facts belong to one site each
    for site in sites:
        for other in sites:
            if other != site:
                shared = _strong(known[site.name]) & _strong(known[other.name])
                assert not shared, (site.name, other.name, shared)


def _strong(values: frozenset[str]) -> set[str]:
    """Values other than dates and times (which two hospitals may share by chance)."""
    return {v for v in values if not v.replace(".", "").isdigit()}


def test_same_seed_same_identities_other_seed_others(tmp_path: Path) -> None:
    # Prepare
    generate_sites(tmp_path / "a", n_sites=2, seed=1, scale=0.1)
    generate_sites(tmp_path / "b", n_sites=2, seed=1, scale=0.1)
    generate_sites(tmp_path / "c", n_sites=2, seed=2, scale=0.1)

    # Execute
    a, b, c = (identifying_values(tmp_path / n) for n in "abc")

    # Assert
    assert a == b
    assert _strong(a["site-1"]) & _strong(c["site-1"]) <= {f"SITE1-P{n:04d}" for n in range(99)}


def test_patient_names_are_unique_across_sites_and_patients() -> None:
    # Execute
    names = [
        patient_identity(f"SITE{k}", 3, n).patient_name
        for k in range(1, 65)
        for n in range(1, MAX_UNIQUE_PATIENTS + 1, 7)
    ]

    # Assert
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("task", sorted(PIXELS_BEFORE_IDENTITIES))
def test_pixels_labels_and_patient_grouping_unchanged(tmp_path: Path, task: str) -> None:
    # Prepare
    out = tmp_path / task
    generate_sites(out, n_sites=3, seed=7, task=task, scale=0.1)

    # Execute
    digest = hashlib.sha256()
    for path in sorted(out.rglob("*")):
        if path.suffix == ".dcm":
            ds = pydicom.dcmread(path)
            for part in (
                str(path.relative_to(out)).encode(),
                ds.PixelData,
                ds.SOPInstanceUID.encode(),
                str(ds.PatientID).encode(),
                str(ds.get("ImagePositionPatient")).encode(),
            ):
                digest.update(part)
        elif path.name in ("labels.csv", "lesions.csv"):
            digest.update(path.read_bytes())

    # Assert
    assert digest.hexdigest() == PIXELS_BEFORE_IDENTITIES[task]
