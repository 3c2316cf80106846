"""Series classification sites: CT series of 12-40 slices; positive ones hold a small nodule.

A nodule is a sphere, so it shows on the few slices its diameter spans (one slice can
decide); everything else (lung texture, vessels, chest wall) is drawn on every slice.
`difficulty` (0 to 1, default 0.4) sets the nodules' size and how many slices have vessels.
Sites differ as their scanners do (the `SiteProfile`: field of view, noise, blur, HU
calibration, stored-pixel encoding) and in slice gap and prevalence.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from shared.dicom.writer import PatientInfo, SeriesInfo, StudyInfo, make_uid, write_dataset
from shared.tasks.series_options import SERIES_LABELS_FILE
from simulations.synth.anatomy import (
    ChestWall,
    Grid,
    draw_chest_wall,
    draw_lung,
    draw_vessels,
    sample_chest_wall,
)
from simulations.synth.ct_image import CtSlice, build_ct_slice, equipment_of
from simulations.synth.identity import (
    site_identity,
    study_context,
)
from simulations.synth.lesions import Lesion, draw_lesion, sample_lesion
from simulations.synth.scanner import acquire, encode
from simulations.synth.sites import SiteProfile

__all__ = ["MATRIX", "NODULES_FILE", "generate_series_site", "series_count"]

MATRIX = 64
SLICES = (12, 40)
# Ground truth for tests and QA only; training reads series_labels.csv.
NODULES_FILE = "series_nodules.csv"
SITE_FILE = "site.json"
MIN_SERIES = 6
# Series per site: a quarter of the profile's image count (40 / 28 / 18 at scale 1).
_IMAGES_PER_SERIES = 4


@dataclass(frozen=True)
class _Series:
    """What was written for one series: its label and, when positive, where the nodule is."""

    uid: str
    label: int
    slices: int
    nodule_slices: tuple[int, ...]
    radius_mm: float


def series_count(profile: SiteProfile) -> int:
    """Number of series (one patient each) a site holds."""
    return max(MIN_SERIES, round(profile.n_images / _IMAGES_PER_SERIES))


def slice_gap_mm(profile: SiteProfile) -> float:
    """Distance between slice centres: thin-slice scanners reconstruct closer slices."""
    return round(2.0 + 1.2 * profile.slice_thickness_mm, 2)


def _rng(seed: int, profile: SiteProfile, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, 71, *profile.code.encode(), *keys])


def _context(
    profile: SiteProfile, seed: int, number: int
) -> tuple[PatientInfo, StudyInfo, SeriesInfo]:
    """A patient with a fake but realistic identity, one chest CT study and series."""
    key = ("medfleet-synth-series", seed, profile.code, number)
    sex = "F" if number % 2 else "M"
    return study_context(key, profile.code, seed, number, sex, ("CT CHEST", "Axial lung", "CT"))


def _nodule(
    profile: SiteProfile, n_slices: int, gap: float, rng: np.random.Generator
) -> tuple[Lesion, float]:
    """A small solid nodule away from the series' ends; returns it and its centre z (mm)."""
    half = 0.3 * profile.field_of_view_mm / 2
    centre = rng.uniform(-half, half, size=2)
    look = sample_lesion(bool(rng.random() < 0.5), (float(centre[0]), float(centre[1])), 0.0, rng)
    # 6-12 mm across at the default difficulty 0.4; up to 10-19 mm at 0 (easy data).
    radius = float(rng.uniform(3.0, 6.0)) * (1.6 - 1.5 * profile.difficulty)
    z_centre = gap * (int(rng.integers(2, n_slices - 2)) + float(rng.uniform(-0.25, 0.25)))
    return replace(look, radius_mm=radius, spicules=()), z_centre


def _render(
    profile: SiteProfile,
    grid: Grid,
    z_mm: float,
    nodule: tuple[Lesion, float] | None,
    wall: ChestWall,
    rng: np.random.Generator,
) -> tuple[np.ndarray, bool]:
    """One slice's stored pixels, and whether the nodule shows on it."""
    hu = draw_lung(grid, rng)
    # Vessels look like a nodule on the slice that cuts them across: at difficulty 0
    # (easy data for tests) there are none, from 0.4 (the default) on every slice.
    if rng.random() < 2.5 * profile.difficulty:
        draw_vessels(hu, grid, rng)
    shown = False
    if nodule is not None:
        lesion, z_centre = nodule
        # The sphere's cross-section at this slice; under 1 mm it is lost in the noise.
        radius = float(np.sqrt(max(lesion.radius_mm**2 - (z_mm - z_centre) ** 2, 0.0)))
        if radius >= 1.0:
            draw_lesion(hu, grid, replace(lesion, radius_mm=radius), rng)
            shown = True
    draw_chest_wall(hu, grid, wall)
    return encode(acquire(hu, profile, rng), profile), shown


def _write_series(
    site_dir: Path, profile: SiteProfile, seed: int, number: int, label: int
) -> _Series:
    """Write one patient's series of 12-40 slices; positive ones hold one nodule."""
    rng = _rng(seed, profile, number)
    patient, study, series = _context(profile, seed, number)
    equipment = equipment_of(profile, site_identity(profile.code, seed))
    grid, gap = Grid.square(profile.matrix, profile.pixel_spacing_mm), slice_gap_mm(profile)
    n_slices = int(rng.integers(SLICES[0], SLICES[1] + 1))
    nodule = _nodule(profile, n_slices, gap, rng) if label else None
    clear_of = nodule[0].center_mm if nodule else (0.0, 0.0)
    # The body wall (bright in a lung window, as a nodule is) stays at the field's edge.
    wall = sample_chest_wall(clear_of, 0.4 * profile.field_of_view_mm, rng)
    z_start, shown = float(rng.uniform(-260.0, -120.0)), []
    for index in range(n_slices):
        pixels, visible = _render(profile, grid, index * gap, nodule, wall, rng)
        uid = make_uid("medfleet-synth-series", seed, profile.code, number, "image", index)
        instance = CtSlice(pixels, uid, instance_number=index + 1, z_mm=z_start + index * gap)
        ds = build_ct_slice(instance, profile, patient, study, series, equipment)
        write_dataset(ds, site_dir / f"P{number:04d}" / "SE001" / f"IM{index + 1:05d}.dcm")
        if visible:
            shown.append(index)
    radius = nodule[0].radius_mm if nodule else 0.0
    return _Series(series.uid, label, n_slices, tuple(shown), round(radius, 2))


def _write_tables(site_dir: Path, written: list[_Series]) -> None:
    """series_labels.csv (what training reads) and series_nodules.csv (ground truth)."""
    with (site_dir / SERIES_LABELS_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["series_instance_uid", "label"])
        writer.writerows([s.uid, s.label] for s in written)
    with (site_dir / NODULES_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["series_instance_uid", "slices", "nodule_slices", "radius_mm"])
        writer.writerows(
            [s.uid, s.slices, " ".join(map(str, s.nodule_slices)), s.radius_mm] for s in written
        )


def generate_series_site(site_dir: Path, profile: SiteProfile, seed: int) -> Path:
    """Write one site's CT series (64 x 64 slices), ``series_labels.csv`` and ``site.json``.

    Parameters
    ----------
    site_dir : pathlib.Path
        Empty or missing folder to fill: ``P<nnnn>/SE001/IM<nnnnn>.dcm``.
    profile : SiteProfile
        The site: its scanner (noise, blur, calibration, encoding, field of view at
        64 pixels), prevalence, slice thickness (the slice gap follows it) and size.
    seed : int
        Seed of all randomness; the same seed gives byte-identical files.

    Returns
    -------
    pathlib.Path
        ``site_dir``.
    """
    site_dir.mkdir(parents=True, exist_ok=True)
    spacing = round(profile.field_of_view_mm / MATRIX, 3)
    profile = replace(profile, matrix=MATRIX, pixel_spacing_mm=spacing)
    n_series = series_count(profile)
    n_positive = min(max(1, round(profile.prevalence * n_series)), n_series - 1)
    labels = _rng(seed, profile).permutation([1] * n_positive + [0] * (n_series - n_positive))
    written = [
        _write_series(site_dir, profile, seed, number, int(label))
        for number, label in enumerate(labels, start=1)
    ]
    _write_tables(site_dir, written)
    summary = {
        "task": "series",
        "seed": seed,
        "profile": profile.to_dict(),
        "slice_gap_mm": slice_gap_mm(profile),
        "counts": {
            "series": n_series,
            "positive": n_positive,
            "slices": sum(s.slices for s in written),
            "patients": n_series,
        },
    }
    (site_dir / SITE_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return site_dir
