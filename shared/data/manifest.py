"""Read a site's label manifest (labels.csv: sop_instance_uid,label), skipping bad rows."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path

from shared.errors import DataError

__all__ = [
    "LABELS_FILE",
    "LabelManifest",
    "LabelSkipReason",
    "label_summary",
    "read_label_manifest",
]

LABELS_FILE = "labels.csv"
BINARY_LABELS = frozenset({0, 1})


class LabelSkipReason(StrEnum):
    """Why a row of labels.csv gives no label; ``slug`` keys the summary counts."""

    MISSING_UID = "row without a UID"
    BAD_LABEL = "label is not one of the allowed integers"
    DUPLICATE_UID = "UID listed again with the same label"
    CONFLICTING_LABELS = "UID listed with different labels"
    UNKNOWN_UID = "UID of no usable image"

    @property
    def slug(self) -> str:
        """Short snake_case key, e.g. ``bad_label``."""
        return self.name.lower()


class LabelManifest(dict[str, int]):
    """``{uid: label}`` of the usable rows, with counts of the rows left out.

    Attributes
    ----------
    rows : int
        Data rows read (header excluded).
    skipped_by_reason : dict[LabelSkipReason, int]
        Rows left out per reason (unknown UIDs are counted by `label_summary`, which
        knows the usable images).
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0
        self.skipped_by_reason: dict[LabelSkipReason, int] = {}

    def skip(self, reason: LabelSkipReason, rows: int = 1) -> None:
        """Count `rows` rows left out for `reason`."""
        self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + rows


def read_label_manifest(
    site_dir: Path,
    key: str = "sop_instance_uid",
    allowed: Iterable[int] = BINARY_LABELS,
    filename: str = LABELS_FILE,
) -> LabelManifest:
    """Return {uid: label} from `<site_dir>/labels.csv`, skipping and counting bad rows.

    Rows without a UID, with a label that is not one of `allowed`, or whose UID is
    listed again with a different label (all of that UID's rows) are left out and
    counted in `LabelManifest.skipped_by_reason`; repeats with the same label count once.

    Parameters
    ----------
    site_dir : Path
        The site's data folder.
    key : str
        Column holding the image identifier.
    allowed : iterable of int
        Labels the task accepts (default 0 and 1).
    filename : str
        The manifest's file name in `site_dir` (``series_labels.csv`` for the series task).

    Returns
    -------
    LabelManifest
        The usable labels and the skip counts.

    Raises
    ------
    DataError
        Without the path (site-local): the file is missing, is not UTF-8 CSV, or lacks
        the ``<key>,label`` header.
    """
    path = site_dir / filename
    if not path.is_file():
        raise DataError(
            f"site has no {filename}; add one with columns '{key},label' next to the DICOM files"
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _read_rows(csv.DictReader(handle), key, frozenset(allowed), filename)
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{filename} is not UTF-8 CSV text; save it as CSV (UTF-8)") from err


def _read_rows(
    reader: csv.DictReader, key: str, allowed: frozenset[int], filename: str
) -> LabelManifest:
    """Collect the usable rows of `reader`; a UID with conflicting labels is dropped."""
    if reader.fieldnames is None:
        raise DataError(f"{filename} is empty; add the header '{key},label' and one row each")
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    if key not in reader.fieldnames or "label" not in reader.fieldnames:
        raise DataError(f"{filename} must have the header '{key},label'")
    manifest = LabelManifest()
    rows_of: dict[str, int] = {}  # rows seen per kept UID, all dropped on a conflict
    conflicting: set[str] = set()
    for row in reader:
        manifest.rows += 1
        uid, label = (row.get(key) or "").strip(), _label(row.get("label"), allowed)
        if not uid:
            manifest.skip(LabelSkipReason.MISSING_UID)
        elif label is None:
            manifest.skip(LabelSkipReason.BAD_LABEL)
        elif uid in conflicting:
            manifest.skip(LabelSkipReason.CONFLICTING_LABELS)
        elif uid not in manifest:
            manifest[uid], rows_of[uid] = label, 1
        elif manifest[uid] == label:
            manifest.skip(LabelSkipReason.DUPLICATE_UID)
            rows_of[uid] += 1
        else:
            conflicting.add(uid)
            manifest.skip(LabelSkipReason.CONFLICTING_LABELS, rows_of.pop(uid) + 1)
            del manifest[uid]
    return manifest


def _label(text: str | None, allowed: frozenset[int]) -> int | None:
    """The row's label when it is one of `allowed`, else None."""
    try:
        label = int((text or "").strip())
    except ValueError:
        return None
    return label if label in allowed else None


def label_summary(labels: Mapping[str, int], usable_uids: Iterable[str]) -> dict[str, int]:
    """Return flat label-row counts for the site report (no UID, safe to send).

    Parameters
    ----------
    labels : Mapping[str, int]
        As returned by `read_label_manifest`.
    usable_uids : iterable of str
        UIDs of the site's usable images; labels of other UIDs count as unknown.

    Returns
    -------
    dict[str, int]
        ``label_rows``, ``label_rows_used``, ``label_rows_skipped`` and
        ``label_rows_skipped_<reason-slug>`` for each reason that occurred.
    """
    skipped: dict[LabelSkipReason, int] = {}
    rows = len(labels)
    if isinstance(labels, LabelManifest):
        skipped, rows = dict(labels.skipped_by_reason), labels.rows
    unknown = len(set(labels) - set(usable_uids))
    if unknown:
        skipped[LabelSkipReason.UNKNOWN_UID] = unknown
    counts = {
        "label_rows": rows,
        "label_rows_used": len(labels) - unknown,
        "label_rows_skipped": sum(skipped.values()),
    }
    for reason, count in sorted(skipped.items(), key=lambda item: item[0].slug):
        counts[f"label_rows_skipped_{reason.slug}"] = count
    return counts
