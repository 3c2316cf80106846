"""Convert NIfTI image/label pairs into per-site DICOM folders (MR series + DICOM SEG)."""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shared.dicom.writer import PatientInfo, StudyInfo, make_uid
from shared.errors import ConfigError, DataError
from shared.volumes.mr_series import write_mr_series
from shared.volumes.nifti import NiftiVolume, label_map, list_nifti, read_nifti
from shared.volumes.seg_write import write_seg

__all__ = ["CONVERSION_TABLE", "assign_sites", "convert_nifti_sites", "nifti_geometry"]

logger = logging.getLogger(__name__)

# Site-local key from case name to site and pseudonym, written next to the site folders.
CONVERSION_TABLE = "conversion.csv"
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def convert_nifti_sites(
    images_dir: Path,
    labels_dir: Path,
    out: Path,
    n_sites: int,
    exclude: set[str] | frozenset[str] = frozenset(),
    seed: int = 0,
    segment_labels: Sequence[str] | None = None,
) -> list[Path]:
    """Split NIfTI cases across `n_sites` folders and write each as MR series + SEG.

    Parameters
    ----------
    images_dir, labels_dir : Path
        ``imagesTr`` and ``labelsTr`` style folders; files pair by name.
    out : Path
        Parent of ``site-1`` ... ``site-<n>`` (each must be missing or empty).
    n_sites : int
        Number of sites.
    exclude : set[str]
        Case names (file names without ``.nii.gz``) to leave out, e.g. held-out tests.
    seed : int
        Seed of the case-to-site split and of every UID; same inputs, same files.
    segment_labels : Sequence[str], optional
        Names of classes 1..K; ``class-1``... when None.

    Returns
    -------
    list[Path]
        The site folders, in site order.
    """
    if n_sites < 1:
        raise ConfigError(f"--sites must be >= 1, got {n_sites}")
    images, labels = list_nifti(Path(images_dir)), list_nifti(Path(labels_dir))
    names = sorted(set(images) & set(labels) - set(exclude))
    if not names:
        raise DataError("no NIfTI image/label pairs to convert; check --images and --labels")
    sites = [Path(out) / f"site-{k}" for k in range(1, n_sites + 1)]
    for site in sites:
        if site.exists() and any(site.iterdir()):
            raise ConfigError(
                f"site folder {site.name} is not empty; choose an empty --out", local=str(site)
            )
    table = []
    for name, site_index in assign_sites(names, n_sites, seed).items():
        pseudonym = _pseudonym(name, seed)
        _convert_case(
            images[name],
            labels[name],
            sites[site_index] / pseudonym,
            pseudonym,
            seed,
            segment_labels,
        )
        table.append((name, sites[site_index].name, pseudonym))
    for site in sites:
        site.mkdir(parents=True, exist_ok=True)
    _write_table(Path(out) / CONVERSION_TABLE, table)
    logger.info("converted %d cases into %d sites", len(names), n_sites)
    return sites


def assign_sites(names: Sequence[str], n_sites: int, seed: int) -> dict[str, int]:
    """Deal cases to sites round-robin in a seeded hash order (sizes differ by at most 1).

    Returns
    -------
    dict[str, int]
        Case name to 0-based site index, in case name order.
    """
    order = sorted(names, key=lambda name: (_digest(f"{seed}:{name}"), name))
    rank = {name: i % n_sites for i, name in enumerate(order)}
    return {name: rank[name] for name in sorted(names)}


def nifti_geometry(volume: NiftiVolume) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return ImageOrientationPatient and the LPS position of voxel (0, 0, 0).

    Raises
    ------
    DataError
        When the NIfTI axes are not orthogonal (DICOM slices cannot be sheared).
    """
    axes = _RAS_TO_LPS @ volume.affine[:3, :3]
    units = axes / np.linalg.norm(axes, axis=0)
    if np.abs(units.T @ units - np.eye(3)).max() > 1e-3:
        raise DataError("NIfTI affine is sheared; resample the volume to orthogonal axes")
    orientation = tuple(float(v) for v in (*units[:, 0], *units[:, 1]))
    origin = tuple(float(v) for v in _RAS_TO_LPS @ volume.affine[:3, 3])
    return orientation, origin


def _convert_case(
    image_path: Path,
    label_path: Path,
    case_dir: Path,
    pseudonym: str,
    seed: int,
    segment_labels: Sequence[str] | None,
) -> None:
    """Write one case as ``<case_dir>/MR/IM*.dcm`` and ``<case_dir>/SEG/SEG00001.dcm``."""
    image, label = read_nifti(image_path), read_nifti(label_path)
    if image.array.shape != label.array.shape or not np.allclose(
        image.affine, label.affine, atol=1e-3
    ):
        raise DataError("NIfTI label grid differs from its image; resample the label")
    mask = label_map(label.array)
    count = max(int(mask.max()), len(segment_labels or ()), 1)
    names = list(segment_labels or ()) + [
        f"class-{k}" for k in range(len(segment_labels or ()) + 1, count + 1)
    ]
    orientation, origin = nifti_geometry(image)
    key = ("medfleet-convert", seed, pseudonym)
    patient = PatientInfo(patient_id=pseudonym, patient_name=f"Anon^{pseudonym}")
    study = StudyInfo(
        uid=make_uid(*key, "study"),
        date="20200101",
        time="120000",
        study_id="1",
        accession_number=pseudonym[-8:],
        description="Converted from NIfTI",
    )
    slices = write_mr_series(
        image.array,
        image.spacing,
        case_dir / "MR",
        patient,
        study,
        seed="|".join(map(str, key)),
        orientation=orientation,
        origin=origin,
    )
    write_seg(mask, slices, names, case_dir / "SEG" / "SEG00001.dcm")


def _pseudonym(name: str, seed: int) -> str:
    """Pseudonymous patient ID of a case: a seeded hash, not its file name."""
    return f"NIFTI-{_digest(f'patient:{seed}:{name}')[:12].upper()}"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16, person=b"medfleet-split").hexdigest()


def _write_table(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """Write the site-local case -> (site, pseudonym) table; it re-identifies, keep it here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["case", "site", "patient_id"])
        writer.writerows(rows)
