"""RunRecorder.finish writes report.html (completed or failed); TensorBoard as an option."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import server.report
from server.run_record import RunRecorder
from shared.config import RunConfig


def _recorder(tmp_path: Path, **config: object) -> RunRecorder:
    run = RunConfig.from_mapping({"out-dir": str(tmp_path), "num-server-rounds": 1, **config})
    recorder = RunRecorder(tmp_path, run, ("loss",))
    sites = {"site-1": {"loss": 0.5, "site": "site-1"}, "site-2": {"loss": 0.7, "site": "site-2"}}
    recorder.record_stage("evaluate", 1, sites, {"loss": 0.6}, failures=0)
    return recorder


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_finish_writes_the_report_of_a_completed_or_failed_run(tmp_path: Path, status: str) -> None:
    # Prepare
    recorder = _recorder(tmp_path)

    # Execute
    recorder.finish(status, {"error": "round 2 timed out"} if status == "failed" else None)

    # Assert
    html = (tmp_path / "report.html").read_text()
    assert f"MedFleet run report: classification, {status}" in html
    assert "<td>site-2</td>" in html
    assert not (tmp_path / "tensorboard").exists()


def test_a_failing_report_is_a_warning_not_a_failed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    recorder = _recorder(tmp_path)

    def broken(run_dir: Path) -> str:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(server.report, "build_report", broken)

    # Execute
    with caplog.at_level(logging.WARNING, logger="medfleet.server"):
        recorder.finish("completed")

    # Assert
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "completed"
    assert not (tmp_path / "report.html").exists()
    assert "run report not written (RuntimeError: no fonts)" in caplog.text


def test_tensorboard_option_writes_event_files_per_site(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    # Execute
    _recorder(tmp_path, tensorboard=True).finish("completed")

    # Assert
    runs = sorted(p.name for p in (tmp_path / "tensorboard").iterdir())
    assert runs == ["overall", "site-1", "site-2"]
    assert all(any(p.name.startswith("events.") for p in (tmp_path / "tensorboard" / r).iterdir())
               for r in runs)  # fmt: skip


def test_one_write_holds_the_record_back_and_writes_it_whole_even_on_error(
    tmp_path: Path,
) -> None:
    # Prepare
    recorder = _recorder(tmp_path)
    written = json.loads((tmp_path / "run.json").read_text())

    # Execute / Assert: nothing reaches run.json inside the block, everything at its end
    with pytest.raises(RuntimeError), recorder.one_write():
        recorder.record_sites(1, dropped=["site-3"], refused=[])
        with recorder.one_write():
            recorder.record_files(1, {"checkpoint": "ckpt.npz"})
        assert json.loads((tmp_path / "run.json").read_text()) == written
        raise RuntimeError("aggregation failed")
    entry = json.loads((tmp_path / "run.json").read_text())["rounds"][0]
    assert entry["dropped"] == ["site-3"]
    assert entry["files"] == {"checkpoint": "ckpt.npz"}
    recorder.record_timing(1, "now", 1.5, 1.0)
    assert json.loads((tmp_path / "run.json").read_text())["rounds"][0]["seconds"] == 1.5
