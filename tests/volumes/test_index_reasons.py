"""Index of a DICOM segmentation site: SEG-to-series matching and the reasons for skips."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from shared.volumes import index_segmentation_site
from shared.volumes.reasons import SegSkipReason

from .volume_factory import PATIENT_ID, make_volume, write_case

SHAPE = (12, 14, 5)


def _small_mask() -> np.ndarray:
    """Two classes inside the small test grid."""
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[1:5, 2:6, 1:3] = 1
    mask[7:11, 8:12, 2:4] = 2
    return mask


def test_reasons_count_series_without_seg_and_seg_without_series(tmp_path: Path) -> None:
    # Prepare: a complete case, a series without SEG, a SEG whose series is gone
    volume, mask = make_volume(SHAPE), _small_mask()
    write_case(tmp_path, volume, mask, name="complete")
    _, seg, _ = write_case(tmp_path, volume, mask, name="unlabelled", patient_id="B")
    seg.unlink()
    orphan_series, _, _ = write_case(tmp_path, volume, mask, name="orphan", patient_id="C")
    shutil.rmtree(orphan_series)

    # Execute
    cases, report = index_segmentation_site(tmp_path)

    # Assert
    assert len(cases) == 1 and report.series == 1
    assert cases[0].image[0].parent.parent.name == "complete"
    assert report.skipped_by_reason == {
        SegSkipReason.SERIES_WITHOUT_SEG.value: SHAPE[2],
        SegSkipReason.SEG_WITHOUT_SERIES.value: 1,
    }
    assert report.usable_by_modality == {"MR": SHAPE[2], "SEG": 1}


def test_case_keys_and_reports_hold_no_identifier_or_path(tmp_path: Path) -> None:
    # Prepare
    write_case(tmp_path, make_volume(SHAPE), _small_mask(), name="complete")
    _, seg, _ = write_case(tmp_path, make_volume(SHAPE), _small_mask(), name="lonely")
    seg.unlink()

    # Execute
    cases, report = index_segmentation_site(tmp_path)
    text = f"{report.summary()} {report.format()} {cases[0].case_id} {cases[0].patient_key}"

    # Assert
    assert PATIENT_ID not in text and str(tmp_path) not in text
    assert "1.2.826" not in text  # no UID either
    assert report.summary()["skipped_image_series_without_segmentation"] == SHAPE[2]


def test_second_seg_of_one_series_is_counted_as_duplicate(tmp_path: Path) -> None:
    # Prepare
    _, seg, _ = write_case(tmp_path, make_volume(SHAPE), _small_mask())
    shutil.copy(seg, seg.with_name("copy.dcm"))

    # Execute
    cases, report = index_segmentation_site(tmp_path)

    # Assert
    assert len(cases) == 1
    assert report.skipped_by_reason == {SegSkipReason.SEG_DUPLICATE.value: 1}
