"""The series model (cnn-gru) in a real deployment: TLS, site authentication, SecAgg+."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulations.synth import generate_sites
from tests.deployment.fleet import Fleet

pytestmark = pytest.mark.slow

SITES = ("site-a", "site-b", "site-c")


@pytest.fixture
def series_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Three provisioned sites on 127.0.0.1, each holding synthetic CT series."""
    fleet = Fleet.create(tmp_path, SITES, scale=0.15)
    folders = generate_sites(tmp_path / "series-data", n_sites=3, seed=0, task="series", scale=0.15)
    fleet.data = dict(zip(SITES, folders, strict=True))
    try:
        yield fleet
    finally:
        strays = fleet.close()
    assert not strays, f"processes left running: {strays}"


def test_cnn_gru_trains_one_masked_round_across_three_sites(series_fleet: Fleet) -> None:
    # Prepare
    fleet, out = series_fleet, series_fleet.root / "run"
    fleet.start()
    written = {
        site: json.loads((folder / "site.json").read_text())["counts"]
        for site, folder in fleet.data.items()
    }
    # Execute
    done = fleet.cli(
        fleet.run_args(out, "--task", "series", "--rounds", "1", "--set", "model=cnn-gru"),
        timeout=400,
    )
    # Assert: one round under SecAgg+, every site trained on its series and scored them
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["config"]["task"] == "series"
    assert record["config"]["model"] == "cnn-gru"
    assert record["config"]["secagg"] is True
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
