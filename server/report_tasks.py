"""The run report's sections that depend on what the sites measured, not on the task's name.

Each section appears when its metrics are in run.json: confusion counts and ROC counts
(classification), per-class Dice (segmentation), sample grids and quality distances
(GAN). A new task whose sites send the same keys gets the same plots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from server.report_data import (
    OVERALL,
    class_scores,
    confusion,
    last_evaluated,
    mapping,
    number,
    sample_files,
    site_names,
    stage_metrics,
)
from server.report_html import image, note, table
from server.report_plots import Bars, Line, Panel, bars, confusion_grid, curves, png_uri, roc
from server.report_sections import metric_lines
from shared.metrics import ROC_THRESHOLDS, roc_points

__all__ = [
    "SCORE_GROUPS",
    "confusion_section",
    "dice_section",
    "roc_section",
    "samples_section",
    "score_section",
]

Record = Mapping[str, Any]

#: Validation score curves: (section id, title, metric keys); a group shows when any is there.
SCORE_GROUPS = (
    ("scores", "Validation scores", ("accuracy", "f1", "auc")),
    ("dice-curves", "Dice and HD95", ("dice", "hd95")),
    ("quality", "Sample quality", ("fd", "fd_real", "mmd")),
)


def score_section(keys: Sequence[str]) -> Any:
    """A section drawing each of `keys` per round (overall and per site)."""

    def build(record: Record, run_dir: Path) -> str | None:
        panels = []
        for key in keys:
            lines = metric_lines(record, "evaluate", key)
            if lines:
                panels.append(Panel(key, key, lines))
        if not panels:
            return None
        return image(curves(panels, 3), ", ".join(keys), "bold: overall; thin: each site")

    return build


def _last_round_maps(record: Record) -> tuple[int, list[tuple[str, dict[str, Any]]]] | None:
    """The last evaluated round and its (name, metrics): overall first, then each site."""
    entry = last_evaluated(record)
    if entry is None:
        return None
    maps = [(OVERALL, stage_metrics(entry, "evaluate", None))]
    maps += [(s, stage_metrics(entry, "evaluate", s)) for s in site_names(record)]
    return entry["round"], [(n, m) for n, m in maps if m]


def confusion_section(record: Record, run_dir: Path) -> str | None:
    """Confusion matrices at threshold 0.5 of the last evaluated round, overall and per site."""
    last = _last_round_maps(record)
    if last is None:
        return None
    server_round, maps = last
    matrices = [(name, counts) for name, m in maps if (counts := confusion(m)) is not None]
    if not matrices:
        return None
    rows = [[name, tp, fp, tn, fn] for name, (tp, fp, tn, fn) in matrices]
    caption = f"round {server_round}, threshold 0.5; overall: the sites' counts summed"
    return image(confusion_grid(matrices), "confusion matrices", caption) + table(
        ["", "tp", "fp", "tn", "fn"], rows, bold_first=OVERALL
    )


def roc_section(record: Record, run_dir: Path) -> str | None:
    """ROC curves of the last evaluated round: pooled (exact at the thresholds) and per site."""
    last = _last_round_maps(record)
    if last is None or confusion(last[1][0][1]) is None:
        return None
    server_round, maps = last
    lines, operating = [], []
    for name, metrics in maps:
        points = roc_points(metrics)
        if points is not None:
            xs, ys = zip(*points, strict=True)
            auc = _trapezoid(points)
            lines.append(Line(f"{name} (area {auc:.3f})", xs, ys, bold=name == OVERALL))
    tp, fp, tn, fn = confusion(maps[0][1]) or (0, 0, 0, 0)
    if tp + fn and fp + tn:
        operating.append((OVERALL, fp / (fp + tn), tp / (tp + fn)))
    if not lines:
        return note(
            "the sites sent no ROC counts (an older MedFleet): only the 0.5 operating "
            "point is known"
        ) + (image(roc([], operating), "ROC operating point") if operating else "")
    auc = number(maps[0][1].get("auc"))
    caption = (
        f"round {server_round}; points at thresholds {ROC_THRESHOLDS[0]} to "
        f"{ROC_THRESHOLDS[-1]} (every 0.05), areas by trapezoids through them; the AUC in "
        f"the tables ({'-' if math.isnan(auc) else f'{auc:.3f}'} overall) is the sites' "
        "AUCs averaged by examples"
    )
    return image(roc(lines, operating), "ROC curves", caption)


def _trapezoid(points: Sequence[tuple[float, float]]) -> float:
    return sum(
        (x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False)
    )


def dice_section(record: Record, run_dir: Path) -> str | None:
    """Dice (and HD95) of each class at each site in the last evaluated round."""
    last = _last_round_maps(record)
    if last is None:
        return None
    server_round, maps = last
    dice = {name: class_scores(m, "dice") for name, m in maps}
    classes = sorted({c for scores in dice.values() for c in scores})
    if not classes:
        return None
    labels = _class_labels(record, classes)
    chart = Bars(
        f"Dice per class, round {server_round}",
        "Dice",
        labels,
        [(name, [scores.get(c, float("nan")) for c in classes]) for name, scores in dice.items()],
    )
    hd95 = {name: class_scores(m, "hd95") for name, m in maps}
    rows = [
        [name, *(dice[name].get(c) for c in classes), *(hd95[name].get(c) for c in classes)]
        for name, _ in maps
    ]
    headers = ["", *(f"Dice {label}" for label in labels), *(f"HD95 {label}" for label in labels)]
    caption = "overall first (black); HD95 in mm; '-' where a class is absent at a site"
    return image(bars(chart), "Dice per class per site", caption) + table(
        headers, rows, bold_first=OVERALL
    )


def _class_labels(record: Record, classes: list[int]) -> list[str]:
    """'1 liver'-style labels when the config names the classes, else 'class 1'."""
    raw = mapping(record.get("config")).get("seg-class-names")
    names = [p.strip() for p in raw.split(",") if p.strip()] if isinstance(raw, str) else []
    return [f"{c} {names[c - 1]}" if 0 < c <= len(names) else f"class {c}" for c in classes]


def samples_section(record: Record, run_dir: Path) -> str | None:
    """The sample grids the server wrote, by round (at most 12, spread over the run)."""
    files = sample_files(record, run_dir)
    if not files:
        return None
    grids = "".join(
        image(png_uri(path.read_bytes()), f"samples after round {r}", f"after round {r}")
        for r, path in files
    )
    caption = (
        "the same noise batch every round: each tile follows one sample as the generator learns"
    )
    return f'<div class="samples">{grids}</div>' + note(caption)
