"""Segmentation sites: MR head series with two labelled nuclei, each with its DICOM SEG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared.dicom.writer import EquipmentInfo, PatientInfo, StudyInfo, make_uid
from shared.volumes import MrAcquisition, write_mr_series, write_seg
from simulations.synth.ct_image import equipment_of
from simulations.synth.identity import (
    patient_record,
    site_identity,
    study_record,
)
from simulations.synth.mr_head import MrSiteSettings, mr_settings, render_head
from simulations.synth.sites import SiteProfile

__all__ = ["SEGMENT_LABELS", "generate_segmentation_site", "mr_acquisition", "segmentation_cases"]

SEGMENT_LABELS = ("bright nucleus", "dark nucleus")
SITE_FILE = "site.json"
# Cases per site are a twentieth of the profile's image count (8 / 6 / 4 at scale 1).
_IMAGES_PER_CASE = 20
MIN_CASES = 4


def segmentation_cases(profile: SiteProfile) -> int:
    """Number of patients (series + SEG) a site holds."""
    return max(MIN_CASES, round(profile.n_images / _IMAGES_PER_CASE))


def _rng(seed: int, profile: SiteProfile, *keys: int) -> np.random.Generator:
    """Independent random stream per (seed, site, keys)."""
    return np.random.default_rng([seed, 53, *profile.code.encode(), *keys])


def _patient(
    profile: SiteProfile, seed: int, number: int, rng: np.random.Generator
) -> tuple[PatientInfo, StudyInfo]:
    """A patient with a fake but realistic identity and an MR study, UIDs from the seed."""
    # The visit date and time once came from this stream; drawing (and dropping) them
    # keeps every later draw, so every image and label, as it was.
    rng.integers(0, 730)
    patient = patient_record(profile.code, seed, number, str(rng.choice(["F", "M"])))
    rng.integers(7, 19)
    rng.integers(0, 60)
    uid = make_uid("medfleet-synth-seg", seed, profile.code, number, "study")
    return patient, study_record(profile.code, seed, number, uid, "MR HEAD")


def mr_acquisition(settings: MrSiteSettings, equipment: EquipmentInfo) -> MrAcquisition:
    """The MR acquisition header values of a site's scanner `settings`."""
    return MrAcquisition(
        repetition_time_ms=settings.repetition_time_ms,
        echo_time_ms=settings.echo_time_ms,
        field_strength_t=settings.field_strength_t,
        equipment=equipment,
    )


def _write_case(
    site_dir: Path, profile: SiteProfile, settings: MrSiteSettings, seed: int, number: int
) -> int:
    """Write one patient's MR series and SEG; return the number of labelled voxels."""
    rng = _rng(seed, profile, number)
    patient, study = _patient(profile, seed, number, rng)
    image, labels = render_head(settings, rng)
    acquisition = mr_acquisition(settings, equipment_of(profile, site_identity(profile.code, seed)))
    case_dir = site_dir / f"P{number:04d}"
    slices = write_mr_series(
        image,
        (settings.pixel_mm, settings.pixel_mm, settings.slice_mm),
        case_dir / "MR",
        patient,
        study,
        seed=f"medfleet-synth-seg|{seed}|{profile.code}|{number}",
        description="T1 axial head",
        acquisition=acquisition,
    )
    write_seg(labels, slices, list(SEGMENT_LABELS), case_dir / "SEG" / "SEG00001.dcm")
    return int(np.count_nonzero(labels))


def generate_segmentation_site(site_dir: Path, profile: SiteProfile, seed: int) -> Path:
    """Write one site's MR series with DICOM SEG labels and ``site.json``.

    Parameters
    ----------
    site_dir : pathlib.Path
        Empty or missing folder to fill: ``P<nnnn>/MR/IM*.dcm`` and
        ``P<nnnn>/SEG/SEG00001.dcm`` per patient.
    profile : SiteProfile
        The site; its spacing, thickness, noise and blur set the MR scanner
        (see `mr_settings`), its image count the number of patients.
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
        "segment_labels": list(SEGMENT_LABELS),
        "counts": {"patients": cases, "series": cases, "labelled_voxels": sum(voxels)},
    }
    (site_dir / SITE_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return site_dir
