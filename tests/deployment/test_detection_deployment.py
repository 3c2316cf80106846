"""One detection round in a real deployment: TLS, site authentication, SecAgg+ (127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server.checkpoint import load_checkpoint
from tests.deployment import harness
from tests.deployment.fleet import Fleet

pytestmark = pytest.mark.slow


@pytest.fixture
def detection_fleet(tmp_path: Path) -> Iterator[Fleet]:
    # SecAgg+ needs three sites; the smallest detection sites hold 4 series each.
    fleet = Fleet.create(tmp_path, ("site-a", "site-b", "site-c"), scale=0.2, task="detection")
    try:
        yield fleet
    finally:
        strays = fleet.close()
    assert not strays, f"processes left running: {strays}"


def test_a_detection_round_trains_under_secagg(detection_fleet: Fleet) -> None:
    # Prepare
    fleet, out = detection_fleet, detection_fleet.root / "run"
    fleet.start()
    sets = ("--set", "det-spatial-dims=2", "--set", "batch-size=16")
    args = fleet.run_args(out, "--task", "detection", "--rounds", "1", *sets)

    # Execute
    done = harness.run_cli(args, fleet.procs.home, timeout=400)

    # Assert: completed with SecAgg+, every site scored, and the model moved
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = harness.read_json(out / "run.json")
    assert record["status"] == "completed"
    assert record["config"]["secagg"] is True
    (entry,) = record["rounds"]
    assert set(entry["evaluate"]["sites"]) == set(fleet.sites)
    assert {"cpm", "map", "sens_at_1"} <= set(entry["evaluate"]["aggregated"])
    state = load_checkpoint(out / "checkpoints" / "round-1.npz").state
    assert all(np.isfinite(a).all() for a in state.values())
