"""The run report's cross-site section: the models-by-sites table of the main metric."""

from __future__ import annotations

import json
from pathlib import Path

import report_records as records
from test_report import plots, sections

from server.report import build_report


def _with_table(tmp_path: Path, task: str, table: dict) -> None:
    build = {"classification": records.classification, "gan": records.gan}[task]
    records.write(tmp_path, build)
    record = json.loads((tmp_path / "run.json").read_text())
    record["cross_site"] = table
    (tmp_path / "run.json").write_text(json.dumps(record))


def test_cross_site_section_tabulates_each_model_at_each_site_with_a_heatmap(
    tmp_path: Path,
) -> None:
    # Prepare: site-b's own model never came back from site-a; a site name with markup
    scores = {
        "global": {"site-a": {"auc": 0.8, "loss": 0.4}, "<b>b</b>": {"auc": 0.7}},
        "site-a": {"site-a": {"auc": 0.9}, "<b>b</b>": {"auc": 0.6}},
        "<b>b</b>": {"<b>b</b>": {"auc": 0.75}},
    }
    table = {"round": 2, "models": list(scores), "sites": ["<b>b</b>", "site-a"],
             "main_metric": "auc", "global_from": "round 2 evaluate",
             "failures": {"<b>b</b>": 1}, "scores": scores}  # fmt: skip
    _with_table(tmp_path, "classification", table)

    # Execute
    html = build_report(tmp_path)

    # Assert
    section = sections(html)["cross-site"]
    assert plots(html)["cross-site"] == 1
    assert '<tr class="overall"><td>global</td><td>0.7</td><td>0.8</td></tr>' in section
    assert "<tr><td>site-a</td><td>0.6</td><td>0.9</td></tr>" in section
    assert "<tr><td>&lt;b&gt;b&lt;/b&gt;</td><td>0.75</td><td>-</td></tr>" in section
    assert "auc of each model at each site (higher is better)" in section
    assert "global model after round 2" in section
    assert "global row from: round 2 evaluate" in section
    assert "&lt;b&gt;b&lt;/b&gt;: 1 sites failed" in section
    assert "<b>b</b>" not in html


def test_gan_cross_site_section_shows_fd_lower_is_better_and_older_runs_have_none(
    tmp_path: Path,
) -> None:
    # Prepare: an evaluation-only run of a GAN model file; no main_metric recorded
    scores = {"global": {"site-a": {"fd": 12.5, "g_loss": 1.0}, "site-b": {"fd": 20.0}}}
    table = {"round": 0, "models": ["global"], "sites": ["site-a", "site-b"], "scores": scores}
    _with_table(tmp_path / "gan", "gan", table)
    records.write(tmp_path / "old", records.classification)

    # Execute
    gan, old = build_report(tmp_path / "gan"), build_report(tmp_path / "old")

    # Assert
    section = sections(gan)["cross-site"]
    assert "fd of each model at each site (lower is better)" in section
    assert "<td>global</td><td>12.5</td><td>20</td>" in section
    assert "the model file scored" in section
    assert "cross-site" not in sections(old)
