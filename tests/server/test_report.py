"""The run report built from hand-made run folders of each task: sections, plots, escaping."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import report_records as records

from server.report import build_report, write_report, write_report_quietly
from shared.cli import main
from shared.errors import ReportError

_PNG = 'src="data:image/png;base64,'


def sections(html: str) -> dict[str, str]:
    """Each section's HTML by its id."""
    found = re.findall(r'<section id="([^"]+)">(.*?)</section>', html, flags=re.S)
    return dict(found)


def plots(html: str) -> dict[str, int]:
    """How many embedded PNG images each section holds."""
    return {sid: body.count(_PNG) for sid, body in sections(html).items()}


def test_classification_report_has_tables_losses_confusion_and_roc(tmp_path: Path) -> None:
    # Prepare
    records.write(tmp_path, records.classification)

    # Execute
    html = build_report(tmp_path)

    # Assert: one plot per figure section, nothing fetched from outside the page
    counts = plots(html)
    assert counts["losses"] == counts["scores"] == counts["confusion"] == counts["roc"] == 1
    assert counts["overall"] == counts["per-site"] == 0
    assert not {"dice", "samples", "quality"} & set(counts)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    # Confusion counts at 0.5 of the last round: site-a tp 2 fp 1 tn 4 fn 1; site-b 1 1 1 1
    confusion = sections(html)["confusion"]
    for row in (["site-a", 2, 1, 4, 1], ["site-b", 1, 1, 1, 1], ["overall", 3, 2, 5, 2]):
        assert "".join(f"<td>{v}</td>" for v in row) in confusion
    assert "area" in sections(html)["roc"] and "every 0.05" in sections(html)["roc"]
    per_site = sections(html)["per-site"]
    assert per_site.count("<td>site-a</td>") == per_site.count("<td>site-b</td>") == 2
    assert "roc_tp_" not in html and "<th>tp</th>" not in sections(html)["overall"]


def test_segmentation_report_has_dice_per_class_per_site(tmp_path: Path) -> None:
    # Prepare
    records.write(tmp_path, records.segmentation)

    # Execute
    html = build_report(tmp_path)

    # Assert
    counts = plots(html)
    assert counts["dice"] == counts["dice-curves"] == counts["losses"] == 1
    assert not {"confusion", "roc", "samples"} & set(counts)
    dice = sections(html)["dice"]
    assert "Dice 1 liver" in dice and "HD95 2 tumour" in dice
    # Round 2 Dice of class 1 at site-b: 0.5 + 0.2 + 0.05
    assert "<td>site-b</td><td>0.75</td>" in dice


def test_gan_report_embeds_every_sample_grid_and_the_quality_curve(tmp_path: Path) -> None:
    # Prepare
    records.write(tmp_path, records.gan)

    # Execute
    html = build_report(tmp_path)

    # Assert
    counts = plots(html)
    assert counts["samples"] == 3
    assert counts["quality"] == counts["losses"] == 1
    for number in (1, 2, 3):
        assert f"after round {number}" in sections(html)["samples"]


def test_sample_grids_are_read_from_the_moved_run_folder_only(tmp_path: Path) -> None:
    # Prepare: the run folder moved after the run; one path points outside it
    records.write(tmp_path / "old", records.gan)
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "old", moved)
    record = json.loads((moved / "run.json").read_text())
    record["rounds"][0]["files"]["samples"] = "/etc/passwd"
    (moved / "run.json").write_text(json.dumps(record))

    # Execute
    html = build_report(moved)

    # Assert: rounds 2 and 3 found under the new folder; nothing read outside it
    assert plots(html)["samples"] == 2


def test_failed_run_without_rounds_gives_a_report_and_escapes_the_record(tmp_path: Path) -> None:
    # Prepare: failed before any round, with markup in the error and a config value
    records.write(tmp_path, records.classification)
    record = json.loads((tmp_path / "run.json").read_text())
    record.update(status="failed", rounds=[], error="<script>alert(1)</script> & co")
    record["config"]["debug-attack"] = '"><img src=x onerror=alert(2)>'
    (tmp_path / "run.json").write_text(json.dumps(record))

    # Execute
    html = build_report(tmp_path)

    # Assert
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<script" not in html and "<img src=x" not in html
    assert {"summary", "privacy", "overall", "config"} <= set(sections(html))
    assert "no round completed" in sections(html)["overall"]


def test_round_without_evaluate_and_odd_values_do_not_break_the_report(tmp_path: Path) -> None:
    # Prepare: round 2 never evaluated; a site name with markup; a string where a number was
    records.write(tmp_path, records.classification)
    record = json.loads((tmp_path / "run.json").read_text())
    record["rounds"][1]["evaluate"] = None
    sites = record["rounds"][0]["evaluate"]["sites"]
    sites["<b>site</b>"] = {**sites.pop("site-b"), "loss": "high"}
    (tmp_path / "run.json").write_text(json.dumps(record))

    # Execute
    html = build_report(tmp_path)

    # Assert: the confusion matrices are round 1's; the site name is shown as text
    counts = plots(html)
    assert counts["confusion"] == counts["roc"] == counts["losses"] == 1
    assert "round 1, threshold 0.5" in sections(html)["confusion"]
    assert "&lt;b&gt;site&lt;/b&gt;" in html and "<b>site</b>" not in html
    assert "could not be drawn" not in html


def test_dp_and_secagg_settings_are_shown(tmp_path: Path) -> None:
    # Prepare
    records.write(tmp_path, records.classification)
    record = json.loads((tmp_path / "run.json").read_text())
    record["config"].update({"dp": "client", "dp-delta": 1e-5, "secagg": True,
                             "secagg-num-shares": 3, "secagg-threshold": 2})  # fmt: skip
    privacy = {"mode": "client", "delta": 1e-5, "epsilon": 2.5, "accountant": "RDP (Opacus)"}
    for entry in record["rounds"]:
        entry["privacy"] = {**privacy, "epsilon": 1.25 * entry["round"]}
    record["privacy"] = {**privacy, "after_round": 2}
    (tmp_path / "run.json").write_text(json.dumps(record))

    # Execute
    section = sections(build_report(tmp_path))["privacy"]

    # Assert
    assert "<td>client</td>" in section and "<td>2.5</td>" in section
    assert "<th>SecAgg+ threshold</th><td>2</td>" in section
    assert section.count(_PNG) == 1  # epsilon per round


def test_report_cli_rebuilds_the_report_and_refuses_a_folder_without_run_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    records.write(tmp_path / "run", records.segmentation)
    out = tmp_path / "elsewhere" / "r.html"

    # Execute
    rebuilt = main(["report", str(tmp_path / "run")])
    moved = main(["report", str(tmp_path / "run"), "--out", str(out)])
    missing = main(["report", str(tmp_path)])

    # Assert
    assert rebuilt == moved == 0
    assert (tmp_path / "run" / "report.html").read_text() == out.read_text()
    assert missing == 2
    assert "no run.json in" in capsys.readouterr().err
    with pytest.raises(ReportError, match="give the folder a run wrote"):
        write_report(tmp_path)


def test_quiet_writer_logs_instead_of_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    (tmp_path / "run.json").write_text("{ cut off")

    # Execute
    written = write_report_quietly(tmp_path)

    # Assert
    assert written is None
    assert "rebuild it with `medfleet report" in caplog.text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    # Prepare
    records.write(tmp_path, records.classification)
    report = write_report(tmp_path)
    shot = tmp_path / "shot.png"

    # Execute: no network at all; the page must draw from itself
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1200,3000", "--proxy-server=127.0.0.1:9", f"--screenshot={shot}",
         report.as_uri()],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    # Assert: a page with plots, not a blank one
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1200, 3000)
    extremes = image.getextrema()
    assert extremes[0] < 100 and extremes[1] > 200
    assert len(set(image.resize((120, 300)).getdata())) > 50
