"""The run report's cross-site section: every model's main score at every site."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.report_data import mapping, number
from server.report_html import image, note, table
from server.report_plots import heatmap
from shared.cross_site import GLOBAL, lower_is_better, main_metric

__all__ = ["cross_site_section"]


def cross_site_section(record: Mapping[str, Any], run_dir: Path) -> str | None:
    """The cross-site table (models by sites) of the main metric, and its heatmap.

    None when run.json holds no cross-site evaluation (a failed or an older run).
    """
    cross = mapping(record.get("cross_site"))
    scores = {str(m): mapping(v) for m, v in mapping(cross.get("scores")).items()}
    models = [str(m) for m in cross.get("models") or scores]
    sites = [str(s) for s in cross.get("sites") or []]
    if not models or not sites:
        return None
    metric = str(cross.get("main_metric") or main_metric(scores))
    values = [
        [number(mapping(scores.get(model, {}).get(site)).get(metric)) for site in sites]
        for model in models
    ]
    rows = [[model, *row] for model, row in zip(models, values, strict=True)]
    better = f"{'lower' if lower_is_better(metric) else 'higher'} is better"
    chart = heatmap(models, sites, values, f"{metric} ({better})", lower_is_better(metric))
    return (
        note(f"{metric} of each model at each site ({better})")
        + table(["model \\ site", *sites], rows, bold_first=GLOBAL)
        + image(chart, f"cross-site {metric}", _caption(cross))
        + note(_where_from(cross))
    )


def _caption(cross: Mapping[str, Any]) -> str:
    """What the rows and columns are."""
    after = cross.get("round")
    model = "the model file scored" if after == 0 else f"the global model after round {after}"
    return (
        f"rows: {GLOBAL} = {model}; a site's name = that site's last local model (the "
        "weights it sent in the last round). Columns: the site whose own validation split "
        "scored it. '-': the site did not reply or has no validation data"
    )


def _where_from(cross: Mapping[str, Any]) -> str:
    source = str(cross.get("global_from") or "not recorded")
    failures = {str(m): n for m, n in mapping(cross.get("failures")).items() if n}
    failed = "; ".join(f"{m}: {n} sites failed" for m, n in failures.items())
    return f"{GLOBAL} row from: {source}" + (f"; {failed}" if failed else "")
