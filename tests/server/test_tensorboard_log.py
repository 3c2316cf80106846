"""TensorBoard event files of the per-round metrics: one run per site and one overall."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from server.tensorboard_log import TensorBoardLog  # noqa: E402


def _scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    # Event files hold float32.
    return [(e.step, round(e.value, 6)) for e in events.Scalars(tag)]


def test_each_site_and_the_overall_metrics_become_a_run(tmp_path: Path) -> None:
    # Prepare
    log = TensorBoardLog(tmp_path)
    per_site = {"site-1": {"loss": 0.5, "tp": 3.0, "site": "site-1"}, "../evil": {"loss": 0.7}}

    # Execute
    for server_round in (1, 2):
        log.add_stage("evaluate", server_round, per_site, {"loss": 0.6, "roc_tp_0": 9.0})
    log.close()

    # Assert: counts and strings left out; a site name never escapes the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["___evil", "overall", "site-1"]
    assert _scalars(tmp_path / "overall", "evaluate/loss") == [(1, 0.6), (2, 0.6)]
    assert [v for _, v in _scalars(tmp_path / "site-1", "evaluate/loss")] == [0.5, 0.5]
    assert EventAccumulator(str(tmp_path / "overall")).Reload().Tags()["scalars"] == [
        "evaluate/loss"
    ]


def test_a_resumed_run_shows_a_redone_round_once(tmp_path: Path) -> None:
    # Prepare: rounds 1 and 2 logged, then the run resumed after round 1
    first = TensorBoardLog(tmp_path)
    for server_round in (1, 2):
        first.add_stage("fit", server_round, {}, {"train_loss": 1.0})
    first.close()

    # Execute
    resumed = TensorBoardLog(tmp_path, first_round=2)
    resumed.add_stage("fit", 2, {}, {"train_loss": 0.25})
    resumed.close()

    # Assert
    assert _scalars(tmp_path / "overall", "fit/train_loss") == [(1, 1.0), (2, 0.25)]
