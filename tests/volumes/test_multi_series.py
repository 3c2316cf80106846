"""Several series of one study as one input: geometry, resampling, stacking, skip reasons."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from shared.config import RunConfig
from shared.dicom.writer import PatientInfo, StudyInfo
from shared.errors import ConfigError
from shared.series_inputs import parse_series_inputs
from shared.tasks import get_task
from shared.volumes import LoadSegCased, index_segmentation_site, write_mr_series, write_seg
from shared.volumes.reasons import SegSkipReason
from shared.volumes.series import load_series

from .test_series_assembly import OBLIQUE
from .volume_factory import make_mask, make_volume

T1_GRID = ((20, 24, 9), (0.8, 0.9, 2.5))
# The T2 covers the T1 on a coarser, shifted grid: no voxel centre of one lies on the other.
T2_GRID = ((16, 18, 8), (1.1, 1.3, 3.2))
FRAME = "1.2.826.0.1.3680043.8.498.501"


def _world(shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    """Patient coordinates (x, y, z) of every voxel centre of an axial volume centred on 0,
    as `write_mr_series` places it."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing, strict=True)]
    return np.meshgrid(*axes, indexing="ij")


def _ramp(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A linear function of position: trilinear interpolation reproduces it exactly."""
    return 800.0 + 3.0 * x - 2.0 * y + 5.0 * z


def _write_study(
    root: Path, name: str, descriptions: Sequence[str], seg_on: int = 0
) -> dict[str, Path]:
    """One study: the T1 grid random, other series the ramp on the T2 grid; SEG on one."""
    patient = PatientInfo(patient_id=f"PID-{name}", patient_name="Zyxwvut^Quentinella")
    study = StudyInfo(f"1.2.826.0.1.3680043.8.498.{len(name)}{ord(name[0])}", "20240102",
                      "101010", "S1", "A1")  # fmt: skip
    folders, slices = {}, []
    for number, description in enumerate(descriptions, start=1):
        shape, spacing = T1_GRID if number == 1 else T2_GRID
        volume = make_volume(shape) if number == 1 else _ramp(*_world(shape, spacing))
        folders[description] = root / name / f"S{number}"
        slices.append(
            write_mr_series(volume.astype(np.float32), spacing, folders[description], patient,
                            study, seed=f"{name}|{number}", series_number=number,
                            description=description, frame_of_reference_uid=FRAME)
        )  # fmt: skip
    shape = T1_GRID[0] if seg_on == 0 else T2_GRID[0]
    folders["SEG"] = root / name / "SEG" / "seg.dcm"
    write_seg(make_mask(shape), slices[seg_on], ["left", "right"], folders["SEG"])
    return folders


def _files(*folders: Path) -> int:
    return sum(len(list(Path(folder).glob("*.dcm"))) for folder in folders)


def test_the_affine_puts_a_voxel_where_the_dicom_plane_equation_does(tmp_path: Path) -> None:
    # Prepare: an oblique series; DICOM PS3.3 C.7.6.2.1.1 places pixel (column i, row j)
    # of a slice at IPP + i * column spacing * row direction + j * row spacing * col direction.
    patient = PatientInfo(patient_id="PID-AFF", patient_name="A^B")
    study = StudyInfo("1.2.826.0.1.3680043.8.498.9", "20240102", "101010", "S1", "A1")
    write_mr_series(make_volume((6, 5, 4)), (0.7, 0.9, 2.0), tmp_path / "s", patient, study,
                    seed="aff", orientation=OBLIQUE, origin=(10.0, -4.0, 31.0))  # fmt: skip
    files = sorted((tmp_path / "s").glob("*.dcm"))
    series = load_series(files[::-1])
    third = dcmread(files[2], stop_before_pixels=True)  # written as slice k = 2
    row, col = (
        np.array(third.ImageOrientationPatient[:3]),
        np.array(third.ImageOrientationPatient[3:]),
    )
    row_spacing, col_spacing = (float(v) for v in third.PixelSpacing)
    expected = np.array(third.ImagePositionPatient) + 4 * col_spacing * row + 3 * row_spacing * col

    # Execute
    world = series.affine @ np.array([4.0, 3.0, 2.0, 1.0])

    # Assert
    np.testing.assert_allclose(world[:3], expected, atol=1e-4)


def test_two_series_stack_the_t1_then_the_t2_resampled_onto_it(tmp_path: Path) -> None:
    # Prepare
    _write_study(tmp_path, "one", ["T1 axial head", "T2 axial head"])
    inputs = parse_series_inputs("MR:t1*,MR:T2*")
    (case,), _ = index_segmentation_site(tmp_path, inputs)

    # Execute
    item = LoadSegCased(drop_case=True)({"case": case})

    # Assert: channel 0 is the T1 on its own grid, channel 1 the T2's ramp at each T1 voxel
    image, label = item["image"], item["label"]
    assert image.shape == (2, *T1_GRID[0]) and label.shape == (1, *T1_GRID[0])
    np.testing.assert_allclose(image[0], make_volume(T1_GRID[0]), atol=0.01)
    x, y, z = _world(*T1_GRID)
    t2_half = [(n - 1) / 2.0 * s for n, s in zip(*T2_GRID, strict=True)]
    inside = (np.abs(x) <= t2_half[0]) & (np.abs(y) <= t2_half[1]) & (np.abs(z) <= t2_half[2])
    assert inside.mean() > 0.5
    np.testing.assert_allclose(image[1][inside], _ramp(x, y, z)[inside], atol=0.05)
    np.testing.assert_array_equal(label[0], make_mask(T1_GRID[0]))


def test_studies_lacking_or_doubling_an_input_are_skipped_and_counted(tmp_path: Path) -> None:
    # Prepare
    good = _write_study(tmp_path, "good", ["T1 axial", "T2 axial"])
    lacking = _write_study(tmp_path, "lacking", ["T1 axial"])
    double = _write_study(tmp_path, "double", ["T1 axial", "T2 axial", "t2 axial repeat"])
    inputs = parse_series_inputs("MR:T1*,MR:T2*")

    # Execute
    cases, report = index_segmentation_site(tmp_path, inputs)

    # Assert: the good study is the one case; the others' files count under their reason
    assert [(c.image[0].parent, c.inputs[0][0].parent) for c in cases] == [
        (good["T1 axial"], good["T2 axial"])
    ]
    assert report.skipped_by_reason == {
        SegSkipReason.STUDY_LACKS_INPUT.value: _files(lacking["T1 axial"]) + 1,
        SegSkipReason.STUDY_AMBIGUOUS_INPUT.value: _files(*list(double.values())[:3]) + 1,
    }
    assert report.usable_by_modality == {"MR": _files(*list(good.values())[:2]), "SEG": 1}


def test_a_seg_on_the_second_input_is_skipped_and_counted(tmp_path: Path) -> None:
    # Prepare: the SEG labels the T2, but seg-inputs names the T1 first
    study = _write_study(tmp_path, "t2seg", ["T1 axial", "T2 axial"], seg_on=1)

    # Execute
    cases, report = index_segmentation_site(tmp_path, parse_series_inputs("MR:T1*,MR:T2*"))

    # Assert
    assert cases == []
    assert report.skipped_by_reason == {
        SegSkipReason.SEG_NOT_ON_REFERENCE.value: _files(study["T1 axial"], study["T2 axial"]) + 1
    }


@pytest.mark.parametrize("raw", ["T1*", "MR:", ":T1*", "MR:T1*,,MR:T2*", "MR:T1*,mr:T1*"])
def test_a_bad_seg_inputs_string_is_refused_naming_the_key(raw: str) -> None:
    # Prepare
    config = RunConfig.from_mapping({"task": "segmentation", "seg-inputs": raw})

    # Execute / Assert
    with pytest.raises(ConfigError, match="'seg-inputs'"):
        get_task(config)


def test_seg_inputs_gives_the_u_net_one_input_channel_per_series() -> None:
    # Prepare
    tiny = {"seg-channels": "4,8", "seg-patch-size": 16, "seg-res-units": 1}
    config = RunConfig.from_mapping({"task": "segmentation", **tiny, "seg-inputs": "MR:T1*,MR:T2*"})

    # Execute
    task = get_task(config)
    logits = task.build_model()(task.example_input(1))

    # Assert
    assert task.example_input(1).shape == (1, 2, 16, 16, 16)
    assert logits.shape == (1, 3, 16, 16, 16)
