"""Prediction values as CSV and JSON, keyed by the input's DICOM UID (site-local files)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

from shared.tasks.base import Prediction

__all__ = ["write_tables"]


def write_tables(predictions: Sequence[Prediction], out_dir: Path) -> list[Path]:
    """Write ``predictions.csv`` and ``predictions.json``: one row per prediction.

    Columns are ``key`` and every value name met, in first-seen order; a value a
    prediction lacks is empty in the CSV and absent from its JSON object. NaN is written
    as an empty cell and as ``null``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for prediction in predictions:
        columns.extend(k for k in prediction.values if k not in columns)
    csv_path, json_path = out_dir / "predictions.csv", out_dir / "predictions.json"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", *columns])
        for prediction in predictions:
            row = [_cell(prediction.values.get(k)) for k in columns]
            writer.writerow([prediction.key, *row])
    table = {p.key: {k: _json(v) for k, v in p.values.items()} for p in predictions}
    json_path.write_text(json.dumps(table, indent=2) + "\n")
    return [csv_path, json_path]


def _cell(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return repr(float(value))


def _json(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
