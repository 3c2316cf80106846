"""Lesion classification sites: CT slices of benign or malignant nodules with a labels table."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.dicom.writer import (
    PatientInfo,
    SeriesInfo,
    StudyInfo,
    make_uid,
    write_dataset,
)
from simulations.synth.anatomy import (
    Grid,
    draw_chest_wall,
    draw_lung,
    draw_vessels,
    sample_chest_wall,
)
from simulations.synth.ct_image import CtSlice, build_ct_slice, equipment_of
from simulations.synth.identity import (
    site_identity,
    skip_legacy_visit_draws,
    study_context,
)
from simulations.synth.lesions import Lesion, draw_lesion, sample_lesion
from simulations.synth.scanner import acquire, encode
from simulations.synth.sites import SiteProfile

__all__ = ["LABELS_FILE", "LESIONS_FILE", "SITE_FILE", "generate_classification_site"]

LABELS_FILE = "labels.csv"
# Ground-truth lesion positions, for tests and QA only; training reads labels.csv.
LESIONS_FILE = "lesions.csv"
SITE_FILE = "site.json"
MAX_SLICES_PER_SERIES = 3


@dataclass(frozen=True)
class _Written:
    """What was written for one slice: enough for the labels and lesions tables."""

    sop_instance_uid: str
    label: int
    lesion: Lesion
    center_px: tuple[float, float]


def _rng(seed: int, profile: SiteProfile, *keys: int) -> np.random.Generator:
    """Independent random stream per (seed, site, keys), so sites never share noise."""
    return np.random.default_rng([seed, *profile.code.encode(), *keys])


def render_slice(
    profile: SiteProfile, malignant: bool, rng: np.random.Generator
) -> tuple[np.ndarray, Lesion]:
    """Draw one slice (lung, vessels, nodule, chest wall) as the site's scanner stores it.

    Returns
    -------
    tuple[numpy.ndarray, Lesion]
        Stored pixel values (apply the site's rescale to get HU) and the drawn nodule.
    """
    grid = Grid.square(profile.matrix, profile.pixel_spacing_mm)
    hu = draw_lung(grid, rng)
    draw_vessels(hu, grid, rng)
    offset = rng.uniform(-0.3, 0.3, size=2) * grid.half_fov_mm
    lesion = sample_lesion(malignant, (float(offset[0]), float(offset[1])), profile.difficulty, rng)
    draw_lesion(hu, grid, lesion, rng)
    draw_chest_wall(hu, grid, sample_chest_wall(lesion.center_mm, 2.2 * lesion.radius_mm, rng))
    return encode(acquire(hu, profile, rng), profile), lesion


def _center_px(profile: SiteProfile, lesion: Lesion) -> tuple[float, float]:
    """Lesion centre as (row, column) pixel coordinates."""
    middle = (profile.matrix - 1) / 2.0
    col = lesion.center_mm[0] / profile.pixel_spacing_mm + middle
    row = lesion.center_mm[1] / profile.pixel_spacing_mm + middle
    return round(row, 2), round(col, 2)


def _patient_context(
    profile: SiteProfile, seed: int, number: int, rng: np.random.Generator
) -> tuple[PatientInfo, StudyInfo, SeriesInfo]:
    """A patient with a fake but realistic identity, one CT study and one series."""
    key = ("medfleet-synth", seed, profile.code, number)
    sex = str(rng.choice(["F", "M"]))
    skip_legacy_visit_draws(rng)
    return study_context(key, profile.code, seed, number, sex, ("CT CHEST", "Axial lung", "CT"))


def _write_patient(
    site_dir: Path, profile: SiteProfile, seed: int, number: int, labels: list[int]
) -> list[_Written]:
    """Write one patient's series: one slice per nodule, each at its own table position."""
    rng = _rng(seed, profile, number)
    patient, study, series = _patient_context(profile, seed, number, rng)
    equipment = equipment_of(profile, site_identity(profile.code, seed))
    series_dir = site_dir / f"P{number:04d}" / f"SE{series.number:03d}"
    z_mm = float(rng.uniform(-260.0, -120.0))
    written = []
    for instance, label in enumerate(labels, start=1):
        pixels, lesion = render_slice(profile, bool(label), rng)
        uid = make_uid("medfleet-synth", seed, profile.code, number, "image", instance)
        ct_slice = CtSlice(pixels=pixels, sop_instance_uid=uid, instance_number=instance, z_mm=z_mm)
        ds = build_ct_slice(ct_slice, profile, patient, study, series, equipment)
        write_dataset(ds, series_dir / f"IM{instance:05d}.dcm")
        written.append(_Written(uid, label, lesion, _center_px(profile, lesion)))
        z_mm += float(rng.uniform(15.0, 60.0))
    return written


def _write_tables(site_dir: Path, written: list[_Written]) -> None:
    """Write labels.csv (what training reads) and lesions.csv (ground truth for QA)."""
    with (site_dir / LABELS_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["sop_instance_uid", "label"])
        writer.writerows([w.sop_instance_uid, w.label] for w in written)
    with (site_dir / LESIONS_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["sop_instance_uid", "row", "col", "diameter_mm", "label"])
        writer.writerows(
            [w.sop_instance_uid, *w.center_px, round(2 * w.lesion.radius_mm, 2), w.label]
            for w in written
        )


def _write_site_json(
    site_dir: Path, profile: SiteProfile, seed: int, labels: list[int], n_patients: int
) -> None:
    """Write site.json: the profile and what was generated (counts only, no identifiers)."""
    summary = {
        "task": "classification",
        "seed": seed,
        "profile": profile.to_dict(),
        "counts": {
            "images": len(labels),
            "malignant": sum(labels),
            "malignant_fraction": round(sum(labels) / len(labels), 4),
            "patients": n_patients,
            "series": n_patients,
        },
    }
    (site_dir / SITE_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def generate_classification_site(site_dir: Path, profile: SiteProfile, seed: int) -> Path:
    """Write one site's DICOM files, ``labels.csv``, ``lesions.csv`` and ``site.json``.

    Parameters
    ----------
    site_dir : pathlib.Path
        Empty or missing folder to fill.
    profile : SiteProfile
        The site's population and scanner.
    seed : int
        Seed of all randomness; the same seed gives byte-identical files.

    Returns
    -------
    pathlib.Path
        ``site_dir``.
    """
    site_dir.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed, profile)
    n_malignant = round(profile.prevalence * profile.n_images)
    labels = rng.permutation([1] * n_malignant + [0] * (profile.n_images - n_malignant))
    written: list[_Written] = []
    start, number = 0, 0
    while start < len(labels):
        number += 1
        count = int(rng.integers(1, MAX_SLICES_PER_SERIES + 1))
        chunk = [int(v) for v in labels[start : start + count]]
        written += _write_patient(site_dir, profile, seed, number, chunk)
        start += count
    _write_tables(site_dir, written)
    _write_site_json(site_dir, profile, seed, [w.label for w in written], number)
    return site_dir
