"""Tests of the synthetic hospital-site generator (`simulations.synth`)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from shared.errors import ConfigError
from simulations.synth import SiteProfile, generate_sites
from simulations.synth.anatomy import LUNG_HU
from simulations.synth.cli import register
from simulations.synth.sites import site_profiles

SCALE = 0.2


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small sites generated once with seed 0."""
    return generate_sites(tmp_path_factory.mktemp("synth"), n_sites=3, seed=0, scale=SCALE)


def _profile(site: Path) -> SiteProfile:
    return SiteProfile(**json.loads((site / "site.json").read_text())["profile"])


def _labels(site: Path) -> dict[str, int]:
    with (site / "labels.csv").open() as handle:
        return {row["sop_instance_uid"]: int(row["label"]) for row in csv.DictReader(handle)}


def _hu(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_generate_sites_layout(sites: list[Path]) -> None:
    # Prepare
    names = [site.name for site in sites]

    # Execute
    files = [path for site in sites for path in site.rglob("*.dcm")]

    # Assert
    assert names == ["site-1", "site-2", "site-3"]
    for site in sites:
        assert (site / "labels.csv").read_text().splitlines()[0] == "sop_instance_uid,label"
        assert (site / "site.json").is_file()
    # <pseudonymous patient>/<series>/IM00001.dcm: file names carry no identity.
    assert all(re.fullmatch(r"P\d{4}/SE\d{3}/IM\d{5}\.dcm", "/".join(f.parts[-3:])) for f in files)


def test_dciodvfy_reports_no_errors(sites: list[Path]) -> None:
    # Prepare
    if shutil.which("dciodvfy") is None:
        if os.environ.get("CI"):
            pytest.fail("dciodvfy (Debian package dicom3tools) is required in CI")
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools)")
    sample = [path for site in sites for path in sorted(site.rglob("*.dcm"))[::8]]

    # Execute
    reports = [
        subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
        for path in sample
    ]

    # Assert
    lines = [line for r in reports for line in (r.stdout + r.stderr).splitlines()]
    assert [line for line in lines if line.startswith("Error")] == []
    assert [line for line in lines if line.startswith("Warning")] == []


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, sites: list[Path]) -> None:
    # Prepare
    root = sites[0].parent

    # Execute
    again = generate_sites(tmp_path / "again", seed=0, scale=SCALE)[0].parent
    other = generate_sites(tmp_path / "other", seed=1, scale=SCALE)[0].parent

    # Assert
    assert _tree_bytes(again) == _tree_bytes(root)
    first, different = _tree_bytes(root), _tree_bytes(other)
    shared = set(first) & set(different)
    assert all(first[name] != different[name] for name in shared if name.endswith(".dcm"))


def test_labels_cover_every_instance_once_and_uids_unique(sites: list[Path]) -> None:
    # Prepare
    headers = [
        pydicom.dcmread(path, stop_before_pixels=True) for s in sites for path in s.rglob("*.dcm")
    ]

    # Execute
    sop_uids = [ds.SOPInstanceUID for ds in headers]
    label_rows = [row for s in sites for row in (s / "labels.csv").read_text().splitlines()[1:]]
    labels = {uid: label for s in sites for uid, label in _labels(s).items()}

    # Assert
    assert len(label_rows) == len(sop_uids) == len(set(sop_uids))
    assert set(labels) == set(sop_uids)
    assert set(labels.values()) == {0, 1}
    studies = {(ds.PatientID, ds.StudyInstanceUID) for ds in headers}
    assert len({uid for _, uid in studies}) == len({pid for pid, _ in studies})
    assert all(re.fullmatch(r"SITE\d-P\d{4}", ds.PatientID) for ds in headers)
    names = {str(ds.PatientID): str(ds.PatientName) for ds in headers}
    assert len(set(names.values())) == len(names)  # one realistic name per patient
    assert all(re.fullmatch(r"[A-Z]+\^[A-Z]+\^[A-Z]", name) for name in names.values())


def _lung_stats(hu: np.ndarray) -> tuple[float, float]:
    """Median lung density and noise (high-pass spread) of one image."""
    lung = hu < -500
    residual = hu - ndimage.gaussian_filter(hu, 1.5)
    return float(np.median(hu[lung])), float(
        residual[ndimage.binary_erosion(lung, iterations=3)].std()
    )


def test_sites_are_non_iid_as_profiles_say(sites: list[Path]) -> None:
    # Prepare
    profiles = [_profile(site) for site in sites]

    # Execute
    lung_hu, noise, fraction, rows = [], [], [], []
    for site in sites:
        images = [_hu(path) for path in sorted(site.rglob("*.dcm"))]
        stats = np.array([_lung_stats(image) for image in images])
        lung_hu.append(np.median(stats[:, 0]))
        noise.append(np.median(stats[:, 1]))
        fraction.append(np.mean(list(_labels(site).values())))
        rows.append({image.shape for image in images})

    # Assert
    assert rows == [{(p.matrix, p.matrix)} for p in profiles]
    expected_lung = [p.hu_gain * LUNG_HU + p.hu_offset for p in profiles]
    assert np.allclose(lung_hu, expected_lung, atol=20.0)
    assert np.argsort(noise).tolist() == np.argsort([p.noise_hu for p in profiles]).tolist()
    assert np.allclose(fraction, [p.prevalence for p in profiles], atol=0.05)
    assert len({p.pixel_spacing_mm for p in profiles}) == 3


def _margin_and_texture(hu: np.ndarray, center: tuple[float, float], radius_px: float) -> float:
    """Score a lesion by the ripple of its margin radius and the spread of its core density."""
    theta = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    steps = np.linspace(0, 2.0 * radius_px, 60)
    rows = center[0] + steps[None, :] * np.sin(theta)[:, None]
    cols = center[1] + steps[None, :] * np.cos(theta)[:, None]
    rays = ndimage.map_coordinates(hu, [rows, cols], order=1, mode="nearest")
    margin = np.argmax(rays < -400, axis=1).astype(float)
    margin[margin == 0] = len(steps)
    ripple = np.abs(margin - ndimage.median_filter(margin, size=15, mode="wrap")).mean()
    core = rays[:, : len(steps) // 6].ravel()
    return ripple / max(margin.mean(), 1.0) + core.std() / 100.0


def _lesion_features(site: Path) -> tuple[list[float], list[int]]:
    """Per image: lesion score around the centre recorded in lesions.csv, and the label."""
    with (site / "lesions.csv").open() as handle:
        truth = {row["sop_instance_uid"]: row for row in csv.DictReader(handle)}
    spacing = _profile(site).pixel_spacing_mm
    scores, labels = [], []
    for path in sorted(site.rglob("*.dcm")):
        row = truth[pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID]
        hu = ndimage.gaussian_filter(_hu(path), 0.7 / spacing)
        center = (float(row["row"]), float(row["col"]))
        radius_px = float(row["diameter_mm"]) / 2 / spacing
        scores.append(_margin_and_texture(hu, center, radius_px))
        labels.append(int(row["label"]))
    return scores, labels


def test_label_is_learnable_but_not_trivial(sites: list[Path]) -> None:
    # Prepare
    features = [_lesion_features(site) for site in sites]

    # Execute
    scores = [s for site_scores, _ in features for s in site_scores]
    labels = [y for _, site_labels in features for y in site_labels]
    auc = roc_auc_score(labels, scores)

    # Assert
    assert 0.75 < auc < 0.99


def test_derived_profiles_are_deterministic_and_distinct() -> None:
    # Prepare
    first = site_profiles(6, scale=0.5)

    # Execute
    second = site_profiles(6, scale=0.5)

    # Assert
    assert first == second
    assert len({(p.matrix, p.noise_hu, p.prevalence) for p in first}) == 6
    assert [p.name for p in first] == [f"site-{i}" for i in range(1, 7)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_sites": 0}, "n_sites"),
        ({"scale": 0.0}, "scale"),
        ({"n_sites": 65}, "n_sites"),
        ({"task": "segmentaton"}, "available tasks: classification"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict, match: str) -> None:
    # Prepare
    out = tmp_path / "out"

    # Execute / Assert
    with pytest.raises(ConfigError, match=match):
        generate_sites(out, **kwargs)


def test_cli_prints_summary_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Prepare
    parser = argparse.ArgumentParser(prog="medfleet")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "--sites", "2", "--out", str(tmp_path), "--scale", "0.1"])

    # Execute
    code = args.func(args)

    # Assert
    output = capsys.readouterr().out
    assert code == 0
    assert "site-1" in output and "site-2" in output and "96x96" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site-1", "site-2"]
