"""Tests of labels.csv reading: bad rows are skipped and counted, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.data.manifest import (
    LabelManifest,
    LabelSkipReason,
    label_summary,
    read_label_manifest,
)
from shared.errors import DataError


def write_labels(folder: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` as the folder's labels.csv."""
    path = folder / "labels.csv"
    path.write_text(text, encoding=encoding)
    return path


def test_good_rows_give_their_labels(tmp_path: Path) -> None:
    # Prepare
    write_labels(tmp_path, "sop_instance_uid,label\n1.2.3,0\n1.2.4, 1 \n")

    # Execute
    labels = read_label_manifest(tmp_path)

    # Assert
    assert labels == {"1.2.3": 0, "1.2.4": 1}
    assert (labels.rows, labels.skipped_by_reason) == (2, {})


def test_bad_rows_are_skipped_and_counted_by_reason(tmp_path: Path) -> None:
    # Prepare: 11 rows; 2 usable UIDs remain (1.1 and 1.5).
    rows = [
        "1.1,1",
        "1.2,2",  # outside {0, 1}
        "1.3,-1",  # outside {0, 1}
        "1.4,malignant",  # not an integer
        ",1",  # no UID
        "1.5,0",
        "1.5,0",  # repeat, same label: counted once
        "1.6,0",
        "1.6,1",  # conflicting: both 1.6 rows dropped
        "1.6,0",  # and any later one
        "1.7",  # no label column value
    ]
    write_labels(tmp_path, "sop_instance_uid,label\n" + "\n".join(rows) + "\n")

    # Execute
    labels = read_label_manifest(tmp_path)

    # Assert
    assert labels == {"1.1": 1, "1.5": 0}
    assert labels.rows == 11
    assert labels.skipped_by_reason == {
        LabelSkipReason.BAD_LABEL: 4,
        LabelSkipReason.MISSING_UID: 1,
        LabelSkipReason.DUPLICATE_UID: 1,
        LabelSkipReason.CONFLICTING_LABELS: 3,
    }


def test_allowed_labels_can_be_widened(tmp_path: Path) -> None:
    # Prepare
    write_labels(tmp_path, "sop_instance_uid,label\n1.1,2\n1.2,3\n")

    # Execute
    labels = read_label_manifest(tmp_path, allowed=range(3))

    # Assert
    assert labels == {"1.1": 2}
    assert labels.skipped_by_reason == {LabelSkipReason.BAD_LABEL: 1}


def test_spreadsheet_exports_are_read(tmp_path: Path) -> None:
    # Prepare: Excel's UTF-8 byte-order mark, CRLF line ends, spaces in the header.
    write_labels(tmp_path, "sop_instance_uid , label\r\n1.1,1\r\n", encoding="utf-8-sig")

    # Execute
    labels = read_label_manifest(tmp_path)

    # Assert
    assert labels == {"1.1": 1}


def test_summary_counts_unknown_uids_and_names_none(tmp_path: Path) -> None:
    # Prepare
    write_labels(tmp_path, "sop_instance_uid,label\n1.1,1\n1.2,0\n1.3,0\n1.4,5\n")
    labels = read_label_manifest(tmp_path)

    # Execute
    counts = label_summary(labels, ["1.1", "1.9"])

    # Assert
    assert counts == {
        "label_rows": 4,
        "label_rows_used": 1,
        "label_rows_skipped": 3,
        "label_rows_skipped_bad_label": 1,
        "label_rows_skipped_unknown_uid": 2,
    }
    assert counts["label_rows_used"] + counts["label_rows_skipped"] == counts["label_rows"]


def test_summary_of_a_plain_mapping() -> None:
    # Execute
    counts = label_summary({"1.1": 0, "1.2": 1}, ["1.2"])

    # Assert
    assert counts == {
        "label_rows": 2,
        "label_rows_used": 1,
        "label_rows_skipped": 1,
        "label_rows_skipped_unknown_uid": 1,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "site has no labels.csv"),
        (b"", "labels.csv is empty"),
        (b"uid,class\n1.1,1\n", "header 'sop_instance_uid,label'"),
        (b"sop_instance_uid,label\n1.1,\xff\xfe\n", "not UTF-8 CSV"),
    ],
    ids=["missing", "empty", "wrong-header", "binary"],
)
def test_unreadable_manifest_is_one_clear_error(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    # Prepare
    if content is not None:
        (tmp_path / "labels.csv").write_bytes(content)

    # Execute
    with pytest.raises(DataError, match=message) as info:
        read_label_manifest(tmp_path)

    # Assert
    assert str(tmp_path) not in str(info.value)
    assert "1.1" not in str(info.value)


def test_manifest_is_a_plain_dict_for_callers(tmp_path: Path) -> None:
    # Prepare
    write_labels(tmp_path, "sop_instance_uid,label\n1.1,1\n")

    # Execute
    labels = read_label_manifest(tmp_path)

    # Assert
    assert isinstance(labels, LabelManifest) and isinstance(labels, dict)
    assert "1.1" in labels and labels["1.1"] == 1 and dict(labels) == {"1.1": 1}
