"""The other tasks on the same deployment: a site in several studies, one folder each.

The package's federation was provisioned with detection and series data beside its
classification images (`site start --task-data`); each run here trains one masked round
(TLS, site authentication, SecAgg+) of its task on the folders its sites hold for it.
This module runs after `test_training.py`, whose checks read the sites' dumps of the
coordinator's run, and after its server restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from server.checkpoint import load_checkpoint
from tests.deployment.federation.conftest import SITES
from tests.deployment.fleet import Fleet

pytestmark = pytest.mark.slow


def _record(fleet: Fleet, out: Path, *args: str) -> dict:
    # The server restart registered test_training's never-started site-d too, and by
    # default a run needs every registered site: these need the three that run.
    args = ("--rounds", "1", "--min-sites", str(len(SITES)), *args)
    done = fleet.cli(fleet.run_args(out, *args), timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["config"]["secagg"] is True
    return record


def test_a_detection_round_trains_under_secagg(federation: Fleet, finished_run: Path) -> None:
    # Prepare: the detection scans written for each site (0-3 nodules each)
    written = {
        site: json.loads((folder / "site.json").read_text())["counts"]
        for site, folder in federation.task_data["detection"].items()
    }
    out = federation.root / "run-detection"

    # Execute
    record = _record(federation, out, "--task", "detection", "--set", "det-spatial-dims=2",
                     "--set", "batch-size=16")  # fmt: skip

    # Assert: every site trained on its own scans and scored them, and the model moved
    (entry,) = record["rounds"]
    assert record["config"]["task"] == "detection"
    assert set(entry["evaluate"]["sites"]) == set(SITES)
    assert {"cpm", "map", "sens_at_1"} <= set(entry["evaluate"]["aggregated"])
    for site, counts in written.items():
        assert entry["fit"]["sites"][site]["data_series"] == counts["series"], site
    state = load_checkpoint(out / "checkpoints" / "round-1.npz").state
    assert all(np.isfinite(a).all() for a in state.values())


def test_cnn_gru_trains_one_masked_round_across_three_sites(
    federation: Fleet, finished_run: Path
) -> None:
    # Prepare
    written = {
        site: json.loads((folder / "site.json").read_text())["counts"]
        for site, folder in federation.task_data["series"].items()
    }
    out = federation.root / "run-series"

    # Execute
    record = _record(federation, out, "--task", "series", "--set", "model=cnn-gru")

    # Assert: one round under SecAgg+, every site trained on its series and scored them
    assert record["config"]["task"] == "series"
    assert record["config"]["model"] == "cnn-gru"
    (entry,) = record["rounds"]
    scored = 0
    for site, counts in written.items():
        assert entry["fit"]["sites"][site]["data_series"] == counts["series"]
        metrics = entry["evaluate"]["sites"][site]
        assert 0.0 <= metrics["accuracy"] <= 1.0
        scored += sum(int(metrics[k]) for k in ("tp", "fp", "tn", "fn"))
    # The pooled confusion counts are the sites' validation series, each scored once (a
    # site's AUC needs both classes among its 2 validation series, so it may be absent).
    pooled = entry["evaluate"]["aggregated"]
    assert sum(int(pooled[k]) for k in ("tp", "fp", "tn", "fn")) == scored >= len(SITES)
    assert (out / "global_model.pt").is_file()
