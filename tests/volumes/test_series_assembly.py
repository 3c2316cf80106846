"""Volume assembly: slice order from positions along the normal, never from files or numbers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from shared.errors import DataError
from shared.volumes import SegCase, load_volume_case
from shared.volumes.series import load_series

from .volume_factory import make_mask, make_volume, write_case

# Rows along +x, columns along -y: the normal points to the feet (reversed slice order).
REVERSED = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
# Rotated 30 degrees about x and 20 degrees about z: an oblique acquisition.
_A, _B = np.deg2rad(30.0), np.deg2rad(20.0)
OBLIQUE = (
    float(np.cos(_B)), float(np.sin(_B)), 0.0,
    float(-np.sin(_B) * np.cos(_A)), float(np.cos(_B) * np.cos(_A)), float(np.sin(_A)),
)  # fmt: skip


def _shuffled_copy(series_dir: Path, target: Path, seed: int) -> list[Path]:
    """Copy slices under scrambled names with scrambled InstanceNumbers."""
    files = sorted(series_dir.glob("*.dcm"))
    rng = np.random.default_rng(seed)
    names, numbers = rng.permutation(len(files)), rng.permutation(len(files)) + 1
    target.mkdir()
    copies = []
    for path, name, number in zip(files, names, numbers, strict=True):
        ds = dcmread(path)
        ds.InstanceNumber = int(number)
        ds.SliceThickness = "9.9"  # deliberately wrong: spacing must come from positions
        copies.append(target / f"x{name:03d}.dcm")
        ds.save_as(copies[-1])
    return [copies[i] for i in rng.permutation(len(copies))]


def test_shuffled_files_and_instance_numbers_give_the_original_volume(tmp_path: Path) -> None:
    # Prepare
    volume = make_volume()
    series_dir, _, _ = write_case(tmp_path, volume, make_mask(), spacing=(0.7, 0.7, 3.0))
    files = _shuffled_copy(series_dir, tmp_path / "shuffled", seed=3)

    # Execute
    loaded = load_series(files)

    # Assert
    np.testing.assert_allclose(loaded.array, volume, atol=0.01)
    assert loaded.stack.spacing == pytest.approx((0.7, 0.7, 3.0))


@pytest.mark.parametrize("orientation", [REVERSED, OBLIQUE], ids=["reversed", "oblique"])
def test_reversed_and_oblique_series_load_with_their_seg(tmp_path: Path, orientation) -> None:
    # Prepare
    volume, mask = make_volume(seed=1), make_mask()
    series_dir, seg, _ = write_case(
        tmp_path, volume, mask, spacing=(1.0, 1.2, 2.0), orientation=orientation
    )
    files = tuple(sorted(series_dir.glob("*.dcm"), reverse=True))

    # Execute
    image, label, spacing = load_volume_case(SegCase("c", "p", "dicom", files, seg))

    # Assert
    np.testing.assert_allclose(image, volume, atol=0.01)
    np.testing.assert_array_equal(label, mask)
    assert spacing == pytest.approx((1.0, 1.2, 2.0), abs=1e-4)


def test_missing_slice_is_refused_as_uneven_spacing(tmp_path: Path) -> None:
    # Prepare
    series_dir, _, _ = write_case(tmp_path, make_volume(), make_mask())
    files = sorted(series_dir.glob("*.dcm"))
    del files[4]

    # Execute / Assert
    with pytest.raises(DataError, match="unevenly spaced"):
        load_series(files)


def test_mixed_orientation_is_refused(tmp_path: Path) -> None:
    # Prepare
    series_dir, _, _ = write_case(tmp_path, make_volume(), make_mask())
    files = sorted(series_dir.glob("*.dcm"))
    odd = tmp_path / "odd.dcm"
    shutil.copy(files[0], odd)
    ds = dcmread(odd)
    ds.ImageOrientationPatient = list(REVERSED)
    ds.save_as(odd)

    # Execute / Assert
    with pytest.raises(DataError, match="orientations"):
        load_series([*files[1:], odd])
