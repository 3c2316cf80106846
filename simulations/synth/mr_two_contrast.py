"""Two-contrast segmentation sites: a T1 and a T2 series per study, the SEG on the T1.

Nucleus 2 has no T1 contrast (it looks like the brain around it) and shows only on the
T2 series, which the scanner acquires on another grid (coarser pixels, thicker slices):
a model sees it only by resampling the T2 onto the T1 grid (`seg-inputs`).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from shared.volumes import write_mr_series, write_seg
from simulations.synth.ct_image import equipment_of
from simulations.synth.identity import site_identity
from simulations.synth.mr_head import (
    MrSiteSettings,
    acquire,
    draw_anatomy,
    mr_settings,
    paint_head,
)
from simulations.synth.segmentation import (
    SEGMENT_LABELS,
    SITE_FILE,
    _patient,
    _rng,
    mr_acquisition,
    segmentation_cases,
)
from simulations.synth.sites import SiteProfile

__all__ = [
    "SERIES_DESCRIPTIONS",
    "T1_LEVELS",
    "T2_LEVELS",
    "generate_two_contrast_site",
    "t2_settings",
]

SERIES_DESCRIPTIONS = ("T1 axial head", "T2 axial head")
#: Nuclei contrasts against the brain: nucleus 2 is invisible on T1, bright on T2.
T1_LEVELS = (260.0, 0.0)
T2_LEVELS = (120.0, 520.0)
#: Brain and skull on T2 (the skull's fat is darker than on T1).
T2_TISSUES = (520.0, 300.0)


def t2_settings(t1: MrSiteSettings) -> MrSiteSettings:
    """The T2 grid: pixels 1.25 x and slices 1.6 x the T1's, covering the T1 volume."""
    slice_mm = round(1.6 * t1.slice_mm, 3)
    slices = math.ceil(t1.slices * t1.slice_mm / slice_mm) + 1
    return replace(
        t1,
        pixel_mm=round(1.25 * t1.pixel_mm, 3),
        slice_mm=slice_mm,
        slices=slices,
        repetition_time_ms=4000.0,
        echo_time_ms=90.0,
    )


def _write_case(
    site_dir: Path, profile: SiteProfile, settings: MrSiteSettings, seed: int, number: int
) -> int:
    """Write one patient's T1 and T2 series and the T1's SEG; return labelled voxels."""
    rng = _rng(seed, profile, number, 2)
    patient, study = _patient(profile, seed, number, rng)
    anatomy = draw_anatomy(settings, rng)
    equipment = equipment_of(profile, site_identity(profile.code, seed))
    case_dir, key = (
        site_dir / f"P{number:04d}",
        f"medfleet-synth-seg2|{seed}|{profile.code}|{number}",
    )
    t1_image, labels = paint_head(anatomy, settings, T1_LEVELS)
    t1 = write_mr_series(
        acquire(t1_image, settings, rng),
        (settings.pixel_mm, settings.pixel_mm, settings.slice_mm),
        case_dir / "T1",
        patient,
        study,
        seed=f"{key}|t1",
        description=SERIES_DESCRIPTIONS[0],
        acquisition=mr_acquisition(settings, equipment),
    )
    t2 = t2_settings(settings)
    t2_image, _ = paint_head(anatomy, t2, T2_LEVELS, T2_TISSUES)
    write_mr_series(
        acquire(t2_image, t2, rng),
        (t2.pixel_mm, t2.pixel_mm, t2.slice_mm),
        case_dir / "T2",
        patient,
        study,
        seed=f"{key}|t2",
        series_number=2,
        description=SERIES_DESCRIPTIONS[1],
        acquisition=mr_acquisition(t2, equipment),
        frame_of_reference_uid=str(t1[0].FrameOfReferenceUID),
    )
    write_seg(labels, t1, list(SEGMENT_LABELS), case_dir / "SEG" / "SEG00001.dcm")
    return int(np.count_nonzero(labels))


def generate_two_contrast_site(site_dir: Path, profile: SiteProfile, seed: int) -> Path:
    """Write one site of two-contrast MR studies (T1 + T2 series, SEG on the T1).

    Parameters
    ----------
    site_dir : pathlib.Path
        Empty or missing folder: ``P<nnnn>/T1/IM*.dcm``, ``P<nnnn>/T2/IM*.dcm`` and
        ``P<nnnn>/SEG/SEG00001.dcm`` per patient.
    profile : SiteProfile
        The site (scanner grid, noise, blur, number of patients), as for one contrast.
    seed : int
        Seed of all randomness; the same seed gives byte-identical files.

    Returns
    -------
    pathlib.Path
        ``site_dir``.
    """
    site_dir.mkdir(parents=True, exist_ok=True)
    settings = mr_settings(profile)
    cases = segmentation_cases(profile)
    voxels = [_write_case(site_dir, profile, settings, seed, n) for n in range(1, cases + 1)]
    summary = {
        "task": "segmentation",
        "seed": seed,
        "profile": profile.to_dict(),
        "mr": settings.to_dict(),
        "mr_t2": t2_settings(settings).to_dict(),
        "series_descriptions": list(SERIES_DESCRIPTIONS),
        "segment_labels": list(SEGMENT_LABELS),
        "counts": {"patients": cases, "series": 2 * cases, "labelled_voxels": sum(voxels)},
    }
    (site_dir / SITE_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return site_dir
