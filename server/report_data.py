"""What the run report reads from run.json: rounds, per-site series, counts, sample files.

Every reader here tolerates a partial record (a failed run, a round without evaluate,
a hand-edited file): a missing piece gives an empty result, never an exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.errors import ReportError
from shared.metrics import is_count_key

__all__ = [
    "OVERALL",
    "class_scores",
    "confusion",
    "is_score",
    "last_evaluated",
    "load_record",
    "mapping",
    "number",
    "rounds",
    "sample_files",
    "score_columns",
    "series",
    "site_names",
    "stage_metrics",
]

#: The row and line name of the aggregated (weighted or pooled) metrics.
OVERALL = "overall"

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_record(run_dir: Path) -> dict[str, Any]:
    """The run record of `run_dir`; ReportError when there is none or it is not JSON."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise ReportError(
            f"no run.json in {run_dir}: give the folder a run wrote (its out-dir, e.g. "
            "runs/sim), which holds run.json and checkpoints/"
        )
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(
            f"run.json in {run_dir} cannot be read ({type(err).__name__}): restore it from "
            "the run folder's backup or rerun"
        ) from err
    if not isinstance(record, dict):
        raise ReportError(f"run.json in {run_dir} is not a run record (not a JSON object)")
    return record


def mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty dict."""
    return value if isinstance(value, dict) else {}


def rounds(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The recorded rounds in round order (entries without a round number left out)."""
    entries = [r for r in record.get("rounds") or [] if isinstance(r, dict)]
    numbered = [r for r in entries if isinstance(r.get("round"), int)]
    return sorted(numbered, key=lambda r: r["round"])


def stage_metrics(entry: Mapping[str, Any], stage: str, site: str | None) -> dict[str, Any]:
    """One round's metrics of a stage ('fit', 'evaluate'): a site's, or aggregated (None)."""
    recorded = mapping(entry.get(stage))
    if site is None:
        return mapping(recorded.get("aggregated"))
    return mapping(mapping(recorded.get("sites")).get(site))


def site_names(record: Mapping[str, Any]) -> list[str]:
    """Every site that replied in any round, sorted."""
    names: set[str] = set()
    for entry in rounds(record):
        for stage in ("fit", "evaluate"):
            names.update(str(n) for n in mapping(mapping(entry.get(stage)).get("sites")))
    return sorted(names)


def number(value: Any) -> float:
    """A metric value as a float; NaN when missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def series(
    record: Mapping[str, Any], stage: str, key: str, site: str | None = None
) -> tuple[list[int], list[float]]:
    """Rounds and values of one metric; rounds where it is missing are left out."""
    xs, ys = [], []
    for entry in rounds(record):
        value = number(stage_metrics(entry, stage, site).get(key))
        if not math.isnan(value):
            xs.append(entry["round"])
            ys.append(value)
    return xs, ys


def score_columns(record: Mapping[str, Any], stage: str) -> list[str]:
    """The metrics a table shows for a stage: scores, not counts or the data report."""
    columns: dict[str, None] = {}
    for entry in rounds(record):
        recorded = mapping(entry.get(stage))
        maps = [mapping(recorded.get("aggregated"))]
        maps += [mapping(m) for m in mapping(recorded.get("sites")).values()]
        for metrics in maps:
            for key, value in metrics.items():
                if is_score(key, value):
                    columns.setdefault(key, None)
    # Losses first, the way the console table starts.
    return sorted(columns, key=lambda k: (not k.endswith("loss"), list(columns).index(k)))


def is_score(key: str, value: Any) -> bool:
    """Whether a metric is a score to show (None: undefined), not a count or data report."""
    if key == "site" or key.startswith("data_") or is_count_key(key):
        return False
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def last_evaluated(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The last round with evaluate results, or None."""
    done = [r for r in rounds(record) if mapping(r.get("evaluate")).get("aggregated")]
    return done[-1] if done else None


def confusion(metrics: Mapping[str, Any]) -> tuple[int, int, int, int] | None:
    """(tp, fp, tn, fn) of a metrics mapping at threshold 0.5, or None when absent."""
    values = [number(metrics.get(k)) for k in ("tp", "fp", "tn", "fn")]
    if any(math.isnan(v) for v in values):
        return None
    tp, fp, tn, fn = (int(round(v)) for v in values)
    return tp, fp, tn, fn


def class_scores(metrics: Mapping[str, Any], prefix: str) -> dict[int, float]:
    """Per-class values such as ``dice_1``, ``dice_2``: {class index: value}."""
    pattern = re.compile(rf"{re.escape(prefix)}_(\d+)")
    found = {}
    for key, value in metrics.items():
        match = pattern.fullmatch(key)
        if match:
            found[int(match.group(1))] = number(value)
    return dict(sorted(found.items()))


def sample_files(
    record: Mapping[str, Any], run_dir: Path, kind: str = "samples", limit: int = 12
) -> list[tuple[int, Path]]:
    """The PNG files of a kind (GAN sample grids) by round, at most `limit` of them.

    Only files inside `run_dir` are read: a recorded path is taken relative to the
    run's recorded out-dir (the folder may have moved since), never followed outside.
    With more rounds than `limit`, the rounds are spread evenly, the last one kept.
    """
    found = []
    for entry in rounds(record):
        recorded = mapping(entry.get("files")).get(kind)
        if isinstance(recorded, str):
            path = _inside(run_dir, Path(recorded))
            if path is not None:
                found.append((entry["round"], path))
    if len(found) <= limit:
        return found
    step = (len(found) - 1) / (limit - 1)
    return [found[round(i * step)] for i in range(limit)]


def _inside(run_dir: Path, recorded: Path) -> Path | None:
    """`recorded` mapped into `run_dir` (by its last two parts), if it is a PNG there."""
    root = Path(run_dir).resolve()
    candidate = (root / Path(*recorded.parts[-2:])).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    with candidate.open("rb") as handle:
        if handle.read(len(_PNG_MAGIC)) != _PNG_MAGIC:
            return None
    return candidate
