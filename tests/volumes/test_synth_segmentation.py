"""Synthetic MR segmentation sites: seeded, byte-identical, indexable, non-IID."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.volumes import index_segmentation_site, load_volume_case
from simulations.synth.generate import SITE_GENERATORS
from simulations.synth.mr_head import mr_settings
from simulations.synth.segmentation import generate_segmentation_site
from simulations.synth.sites import site_profiles


def _files(site: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_site(tmp_path: Path) -> None:
    # Prepare
    profile = site_profiles(3, scale=0.2)[1]

    # Execute
    first = _files(generate_segmentation_site(tmp_path / "a", profile, seed=7))
    again = _files(generate_segmentation_site(tmp_path / "b", profile, seed=7))
    other = _files(generate_segmentation_site(tmp_path / "c", profile, seed=8))

    # Assert
    assert first == again
    assert first.keys() == other.keys() and first != other


def test_site_indexes_into_labelled_cases_with_two_structures(tmp_path: Path) -> None:
    # Prepare
    profile = site_profiles(3, scale=0.2)[2]
    settings = mr_settings(profile)

    # Execute
    site = SITE_GENERATORS["segmentation"](tmp_path / "site", profile, 0)
    cases, report = index_segmentation_site(site)
    image, label, spacing = load_volume_case(cases[0])

    # Assert
    assert len(cases) == 4 and report.skipped == 0
    assert len({case.patient_key for case in cases}) == 4
    assert image.shape == (48, 48, settings.slices)
    assert spacing == (settings.pixel_mm, settings.pixel_mm, settings.slice_mm)
    assert set(np.unique(label)) == {0, 1, 2}
    # Bright and dark nuclei are separable from the brain by intensity.
    assert image[label == 1].mean() > image[label == 0].mean() > image[label == 2].mean()


def test_sites_differ_in_grid_noise_and_contrast() -> None:
    # Prepare
    profiles = site_profiles(3)

    # Execute
    settings = [mr_settings(profile) for profile in profiles]

    # Assert
    assert len({(s.pixel_mm, s.slice_mm, s.slices) for s in settings}) == 3
    assert len({(s.noise, s.contrast, s.bias) for s in settings}) == 3
    assert all(16 <= s.slices <= 32 for s in settings)
