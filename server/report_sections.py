"""The run report's sections every task has: summary, privacy, config, metric tables, losses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.report_data import (
    OVERALL,
    mapping,
    rounds,
    score_columns,
    series,
    site_names,
    stage_metrics,
)
from server.report_html import image, key_values, note, table
from server.report_plots import Line, Panel, curves

__all__ = [
    "config_section",
    "loss_section",
    "metric_lines",
    "overall_table",
    "privacy_section",
    "site_table",
    "summary_section",
]

Record = Mapping[str, Any]
STAGES = ("fit", "evaluate")


def summary_section(record: Record, run_dir: Path) -> str:
    """What ran, how it ended, when, and with which sites."""
    config = mapping(record.get("config"))
    done = rounds(record)
    status = str(record.get("status", "unknown"))
    pairs: list[tuple[str, Any]] = [
        ("task", record.get("task")),
        ("status", status),
        ("rounds recorded", f"{len(done)} of {config.get('num-server-rounds', '?')}"),
        ("sites", site_names(record) or "none replied"),
        ("strategy", config.get("strategy")),
        ("started", record.get("started")),
        ("finished", record.get("finished")),
        ("resumed", len(record.get("resumes") or [])),
        ("MedFleet version", record.get("medfleet_version")),
        ("run folder", str(run_dir)),
    ]
    if record.get("final_model"):
        pairs.append(("final model", Path(str(record["final_model"])).name))
    evaluated = mapping(record.get("evaluated_model"))
    if evaluated:
        pairs.append(("evaluated model (no training)", evaluated.get("path")))
    if record.get("error"):
        pairs.append(("error", record["error"]))
    dropped = sorted({str(s) for r in done for s in r.get("dropped") or []})
    refused = sorted({str(s) for r in done for s in r.get("refused") or []})
    pairs += [("sites that dropped out", dropped), ("updates refused from", refused)]
    return key_values(pairs)


def privacy_section(record: Record, run_dir: Path) -> str:
    """Differential privacy, SecAgg+ and transport as configured, and the budget spent."""
    config = mapping(record.get("config"))
    spent = mapping(record.get("privacy"))
    mode = str(config.get("dp", "off"))
    pairs: list[tuple[str, Any]] = [("differential privacy", mode)]
    if mode != "off":
        pairs += [
            ("noise multiplier", spent.get("noise_multiplier", config.get("dp-noise-multiplier"))),
            ("target epsilon", config.get("dp-target-epsilon") or "none (noise multiplier set)"),
            ("clipping norm", config.get("dp-clip-norm")),
            ("delta", config.get("dp-delta")),
            ("epsilon spent", spent.get("epsilon", "not reported")),
            ("after round", spent.get("after_round")),
            ("accountant", spent.get("accountant")),
            ("protected unit", spent.get("unit")),
        ]
    secagg = bool(config.get("secagg"))
    pairs.append(("SecAgg+ masking", secagg))
    if secagg:
        for key in ("num-shares", "threshold", "clipping-range", "max-weight"):
            pairs.append((f"SecAgg+ {key}", config.get(f"secagg-{key}")))
    pairs.append(("transport", record.get("transport") or _TRANSPORT))
    html = key_values(pairs)
    xs, ys = _epsilons(record)
    if xs:
        panel = Panel("Privacy budget", "epsilon spent", [Line("epsilon", xs, ys, True)])
        html += image(curves([panel], 1), "epsilon spent per round")
    return html


_TRANSPORT = (
    "not recorded in run.json (a MedFleet deployment's SuperLink always uses TLS with site "
    "authentication; a simulation runs in one process)"
)


def _epsilons(record: Record) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for entry in rounds(record):
        epsilon = mapping(entry.get("privacy")).get("epsilon")
        if isinstance(epsilon, int | float) and not isinstance(epsilon, bool):
            xs.append(entry["round"])
            ys.append(float(epsilon))
    return xs, ys


def config_section(record: Record, run_dir: Path) -> str:
    """Every run-config key the run used, sorted."""
    config = mapping(record.get("config"))
    if not config:
        return note("run.json holds no config")
    return key_values(sorted(config.items()))


def _columns(record: Record) -> list[tuple[str, str, str]]:
    """(stage, key, header) of every shown metric; a key in both stages gets its stage."""
    keys = {stage: score_columns(record, stage) for stage in STAGES}
    both = set(keys["fit"]) & set(keys["evaluate"])
    return [
        (stage, key, f"{stage} {key}" if key in both else key)
        for stage in STAGES
        for key in keys[stage]
    ]


def overall_table(record: Record, run_dir: Path) -> str:
    """One row per round: the aggregated metrics, time, and sites lost."""
    columns = _columns(record)
    headers = ["round", *(h for _, _, h in columns), "seconds", "dropped", "refused"]
    rows = []
    for entry in rounds(record):
        cells = [stage_metrics(entry, s, None).get(k) for s, k, _ in columns]
        dropped, refused = entry.get("dropped") or [], entry.get("refused") or []
        rows.append([entry["round"], *cells, entry.get("seconds"), dropped, refused])
    if not rows:
        return note("no round completed: nothing to tabulate")
    return table(headers, rows)


def site_table(record: Record, run_dir: Path) -> str:
    """One row per round and site (and the overall row): every shown metric."""
    columns = _columns(record)
    headers = ["site", "round", *(h for _, _, h in columns)]
    rows = []
    for entry in rounds(record):
        for site in [*site_names(record), None]:
            cells = [stage_metrics(entry, s, site).get(k) for s, k, _ in columns]
            if site is not None and all(c is None for c in cells):
                continue  # the site sat this round out
            rows.append([site or OVERALL, entry["round"], *cells])
    if not rows:
        return note("no site reported metrics")
    return table(headers, rows, bold_first=OVERALL)


def loss_section(record: Record, run_dir: Path) -> str | None:
    """Each loss per round: overall (bold) and per site; None when no loss was recorded."""
    panels = []
    for stage, key, header in _columns(record):
        if not key.endswith("loss"):
            continue
        lines = metric_lines(record, stage, key)
        if lines:
            title = f"{header} ({'training' if stage == 'fit' else 'validation'})"
            panels.append(Panel(title, key, lines))
    if not panels:
        return None
    return image(curves(panels), "loss curves", "bold: overall (weighted); thin: each site")


def metric_lines(record: Record, stage: str, key: str) -> list[Line]:
    """The overall curve of a metric, then one per site; empty when never recorded."""
    lines = []
    for site in [None, *site_names(record)]:
        xs, ys = series(record, stage, key, site)
        if xs:
            lines.append(Line(site or OVERALL, xs, ys, bold=site is None))
    return lines
