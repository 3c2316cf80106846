"""NIfTI -> DICOM conversion: labels survive exactly, images within rescale rounding."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from shared.cli import main
from shared.volumes import convert_nifti_sites, index_segmentation_site, load_volume_case
from shared.volumes.convert import CONVERSION_TABLE, assign_sites
from shared.volumes.nifti import load_nifti_pair
from shared.volumes.reasons import SegSkipReason

DATA = Path(__file__).parents[2].parent / "shared/data/msd_task04_hippocampus"
REAL_CASES = ("hippocampus_001", "hippocampus_003", "hippocampus_004")


def _link_pairs(source: Path, target: Path, names: tuple[str, ...]) -> tuple[Path, Path]:
    """Link (never copy) real cases into an imagesTr/labelsTr folder under tmp."""
    for kind in ("imagesTr", "labelsTr"):
        (target / kind).mkdir(parents=True)
        for name in names:
            (target / kind / f"{name}.nii.gz").symlink_to(source / kind / f"{name}.nii.gz")
    return target / "imagesTr", target / "labelsTr"


def _dicom_by_case(out: Path, sites: list[Path]) -> dict[str, tuple]:
    """Load every converted case, keyed by its NIfTI name through the conversion table."""
    with (out / CONVERSION_TABLE).open() as handle:
        names = {row["patient_id"]: row["case"] for row in csv.DictReader(handle)}
    loaded = {}
    for site in sites:
        cases, _ = index_segmentation_site(site)
        for case in cases:
            loaded[names[case.image[0].parent.parent.name]] = load_volume_case(case)
    return loaded


def _assert_same_case(dicom: tuple, nifti: tuple) -> None:
    image, label, spacing = dicom
    ref_image, ref_label, ref_spacing = nifti
    np.testing.assert_array_equal(label, ref_label)
    # Rescale spreads the value range over 16 bits: half a step is the largest error.
    step = (ref_image.max() - ref_image.min()) / 65535
    np.testing.assert_allclose(image, ref_image, atol=step / 2 + 1e-4 * abs(ref_image).max())
    np.testing.assert_allclose(spacing, ref_spacing, atol=1e-5)


@pytest.mark.skipif(not DATA.is_dir(), reason="shared hippocampus data not available")
def test_real_hippocampus_cases_survive_conversion(tmp_path: Path) -> None:
    # Prepare
    images, labels = _link_pairs(DATA, tmp_path / "nifti", REAL_CASES)

    # Execute
    sites = convert_nifti_sites(images, labels, tmp_path / "out", n_sites=2, seed=5)
    loaded = _dicom_by_case(tmp_path / "out", sites)

    # Assert
    assert sorted(loaded) == list(REAL_CASES)
    for name in REAL_CASES:
        nifti = load_nifti_pair(images / f"{name}.nii.gz", labels / f"{name}.nii.gz")
        assert set(np.unique(nifti[1])) == {0, 1, 2}
        _assert_same_case(loaded[name], nifti)


def test_left_handed_nifti_converts_to_the_same_arrays(tmp_path: Path) -> None:
    # Prepare: radiological (LAS-like) axes, anisotropic voxels, float intensities
    rng = np.random.default_rng(0)
    image = rng.normal(50.0, 10.0, size=(9, 11, 6)).astype(np.float32)
    label = np.zeros(image.shape, dtype=np.uint8)
    label[2:5, 3:7, 1:3], label[6:8, 5:9, 3:5] = 1, 2
    affine = np.diag([-0.9, 1.1, 2.5, 1.0])
    affine[:3, 3] = (30.0, -20.0, 10.0)
    for kind, array in (("imagesTr", image), ("labelsTr", label)):
        (tmp_path / kind).mkdir()
        nib.save(nib.Nifti1Image(array, affine), tmp_path / kind / "case_a.nii.gz")

    # Execute
    nifti = load_nifti_pair(
        tmp_path / "imagesTr/case_a.nii.gz", tmp_path / "labelsTr/case_a.nii.gz"
    )
    sites = convert_nifti_sites(tmp_path / "imagesTr", tmp_path / "labelsTr", tmp_path / "out", 1)
    loaded = _dicom_by_case(tmp_path / "out", sites)

    # Assert: k is reversed so that i x j points along k, in both paths
    np.testing.assert_array_equal(nifti[1], label[:, :, ::-1])
    _assert_same_case(loaded["case_a"], nifti)


def test_nifti_index_pairs_by_name_and_reports_orphans(tmp_path: Path) -> None:
    # Prepare
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    for kind, names in (("imagesTr", ("a", "b")), ("labelsTr", ("a", "c"))):
        (tmp_path / kind).mkdir()
        for name in names:
            nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / kind / f"{name}.nii.gz")

    # Execute
    cases, report = index_segmentation_site(tmp_path)

    # Assert
    assert [case.kind for case in cases] == ["nifti"] and cases[0].image[0].name == "a.nii.gz"
    assert report.skipped_by_reason == {
        SegSkipReason.NIFTI_IMAGE_WITHOUT_LABEL.value: 1,
        SegSkipReason.NIFTI_LABEL_WITHOUT_IMAGE.value: 1,
    }


def test_site_assignment_is_deterministic_balanced_and_seeded() -> None:
    # Prepare
    names = [f"case_{i:03d}" for i in range(20)]

    # Execute
    first, again = assign_sites(names, 3, seed=1), assign_sites(names[::-1], 3, seed=1)
    other = assign_sites(names, 3, seed=2)

    # Assert
    assert first == again and first != other
    assert sorted(np.bincount(list(first.values()))) == [6, 7, 7]


def test_cli_converts_and_leaves_out_the_exclude_list(tmp_path: Path) -> None:
    # Prepare
    array = np.ones((4, 5, 3), dtype=np.uint8)
    for kind in ("imagesTr", "labelsTr"):
        (tmp_path / kind).mkdir()
        for name in ("a", "b", "c"):
            nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / kind / f"{name}.nii.gz")
    (tmp_path / "test_cases.txt").write_text("# held out\nb\nlabelsTr/c.nii.gz\n")
    args = ["convert", "nifti", "--images", str(tmp_path / "imagesTr"), "--labels"]
    args += [str(tmp_path / "labelsTr"), "--sites", "2", "--out", str(tmp_path / "out")]
    args += ["--exclude-list", str(tmp_path / "test_cases.txt"), "--segment-labels", "organ"]

    # Execute
    code = main(args)

    # Assert
    assert code == 0
    table = (tmp_path / "out" / CONVERSION_TABLE).read_text().splitlines()
    assert len(table) == 2 and table[1].startswith("a,")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        CONVERSION_TABLE, "site-1", "site-2",
    ]  # fmt: skip
