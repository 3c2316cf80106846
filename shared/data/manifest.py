"""Read a site's label manifest (labels.csv: sop_instance_uid,label)."""

from __future__ import annotations

import csv
from pathlib import Path

from shared.errors import DataError

__all__ = ["LABELS_FILE", "read_label_manifest"]

LABELS_FILE = "labels.csv"


def read_label_manifest(site_dir: Path, key: str = "sop_instance_uid") -> dict[str, int]:
    """Return {uid: label} from `<site_dir>/labels.csv`.

    Raises DataError (without the path, which is site-local) when the file is missing
    or malformed.
    """
    path = site_dir / LABELS_FILE
    if not path.is_file():
        raise DataError(
            f"site has no {LABELS_FILE}; add one with columns '{key},label' next to the DICOM files"
        )
    labels: dict[str, int] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if (
            reader.fieldnames is None
            or key not in reader.fieldnames
            or "label" not in reader.fieldnames
        ):
            raise DataError(f"{LABELS_FILE} must have the header '{key},label'")
        for line, row in enumerate(reader, start=2):
            try:
                labels[row[key].strip()] = int(row["label"])
            except (TypeError, ValueError):
                raise DataError(f"{LABELS_FILE} line {line}: label must be an integer") from None
    return labels
