"""Detection sites: chest CT series with 0-3 nodules each and a LUNA16-style annotations.csv."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.dicom.writer import PatientInfo, SeriesInfo, StudyInfo, make_uid, write_dataset
from simulations.synth.ct_image import CtSlice, build_ct_slice, equipment_of
from simulations.synth.identity import (
    site_identity,
    study_context,
)
from simulations.synth.nodules import (
    SLICES,
    DetectionGeometry,
    Nodule,
    detection_geometry,
    render_chest,
    sample_nodules,
)
from simulations.synth.scanner import acquire, encode
from simulations.synth.sites import SiteProfile

__all__ = [
    "ANNOTATIONS_FILE",
    "NODULES_FILE",
    "detection_cases",
    "generate_detection_site",
    "world_of_voxel",
    "write_detection_series",
]

ANNOTATIONS_FILE = "annotations.csv"
#: Ground truth in voxel coordinates, for tests and QA only; training reads annotations.csv.
NODULES_FILE = "nodules.csv"
SITE_FILE = "site.json"
_IMAGES_PER_CASE = 20
MIN_CASES = 4


@dataclass(frozen=True)
class _Series:
    """One written series: its UID, where voxel (0, 0, 0) lies, and its nodules."""

    uid: str
    origin_mm: tuple[float, float, float]
    nodules: list[Nodule]


def detection_cases(profile: SiteProfile) -> int:
    """Number of patients (one CT series each) a site holds: 8 / 6 / 4 at scale 1."""
    return max(MIN_CASES, round(profile.n_images / _IMAGES_PER_CASE))


def world_of_voxel(
    voxel: tuple[float, float, float],
    origin_mm: tuple[float, float, float],
    geometry: DetectionGeometry,
) -> tuple[float, float, float]:
    """Patient coordinates (LPS, mm) of a voxel position of an axial series written here."""
    steps = (geometry.pixel_mm, geometry.pixel_mm, geometry.slice_mm)
    return tuple(o + v * s for o, v, s in zip(origin_mm, voxel, steps, strict=True))  # type: ignore[return-value]


def _context(
    profile: SiteProfile, seed: int, number: int
) -> tuple[PatientInfo, StudyInfo, SeriesInfo]:
    key = ("medfleet-synth-det", seed, profile.code, number)
    sex = "F" if number % 2 else "M"
    descriptions = ("CT CHEST LOW DOSE", "Axial lung screening", "CT")
    return study_context(key, profile.code, seed, number, sex, descriptions)


def write_detection_series(
    site_dir: Path,
    profile: SiteProfile,
    seed: int,
    number: int,
    nodules: list[Nodule] | None = None,
) -> _Series:
    """Write patient `number`'s CT series (one file per slice) and return what it holds.

    Its nodules are drawn at random (0 to 3), or are `nodules` when given (tests place
    one at a known position).
    """
    geometry = detection_geometry(profile)
    rng = np.random.default_rng([seed, 71, *profile.code.encode(), number])
    patient, study, series = _context(profile, seed, number)
    drawn = sample_nodules(geometry, rng)
    nodules = drawn if nodules is None else nodules
    ct = geometry.ct_profile(profile)
    stored = encode(acquire(render_chest(geometry, nodules, rng), ct, rng), ct)
    equipment = equipment_of(profile, site_identity(profile.code, seed))
    half = (ct.matrix - 1) / 2.0 * ct.pixel_spacing_mm
    z0 = round(float(rng.uniform(-220.0, -120.0)), 2)
    for k in range(SLICES):
        uid = make_uid("medfleet-synth-det", seed, profile.code, number, "image", k)
        z_mm = round(z0 + k * geometry.slice_mm, 4)
        # Slice k holds volume[:, :, k] as (rows = y, columns = x).
        pixels = np.ascontiguousarray(stored[:, :, k].T)
        ds = build_ct_slice(
            CtSlice(pixels, uid, k + 1, z_mm), ct, patient, study, series, equipment
        )
        write_dataset(ds, site_dir / f"P{number:04d}" / "SE001" / f"IM{k + 1:05d}.dcm")
    return _Series(series.uid, (-half, -half, z0), nodules)


def _write_tables(site_dir: Path, geometry: DetectionGeometry, written: list[_Series]) -> None:
    """annotations.csv (LUNA16 format, patient mm) and nodules.csv (voxel truth for QA)."""
    with (site_dir / ANNOTATIONS_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        for series in written:
            for nodule in series.nodules:
                world = world_of_voxel(nodule.center_voxel, series.origin_mm, geometry)
                writer.writerow([series.uid, *(f"{v:.4f}" for v in world), nodule.diameter_mm])
    with (site_dir / NODULES_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["seriesuid", "voxel_x", "voxel_y", "voxel_z", "diameter_mm", "kind"])
        for series in written:
            for nodule in series.nodules:
                kind = "part-solid" if nodule.part_solid else "solid"
                writer.writerow([series.uid, *nodule.center_voxel, nodule.diameter_mm, kind])


def generate_detection_site(site_dir: Path, profile: SiteProfile, seed: int) -> Path:
    """Write one site's CT series, ``annotations.csv``, ``nodules.csv`` and ``site.json``.

    Parameters
    ----------
    site_dir : pathlib.Path
        Empty or missing folder to fill: ``P<nnnn>/SE001/IM*.dcm`` per patient.
    profile : SiteProfile
        The site; its scanner (noise, blur, calibration, rescale) applies, its pixel and
        slice sizes set the detection grid (`detection_geometry`), its image count the
        number of patients (`detection_cases`).
    seed : int
        Seed of all randomness; the same seed gives byte-identical files.

    Returns
    -------
    pathlib.Path
        ``site_dir``.
    """
    site_dir.mkdir(parents=True, exist_ok=True)
    geometry = detection_geometry(profile)
    cases = detection_cases(profile)
    written = [write_detection_series(site_dir, profile, seed, n) for n in range(1, cases + 1)]
    _write_tables(site_dir, geometry, written)
    nodules = [n for s in written for n in s.nodules]
    summary = {
        "task": "detection",
        "seed": seed,
        "profile": profile.to_dict(),
        "detection": geometry.to_dict(),
        "counts": {
            "patients": cases,
            "series": cases,
            "nodules": len(nodules),
            "part_solid": sum(n.part_solid for n in nodules),
        },
    }
    (site_dir / SITE_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return site_dir
