"""Proof in simulation: one site fails on purpose, and the server holds none of its identifiers.

Three synthetic sites whose DICOM headers carry realistic identities. After round 1 one
of site-2's files is cut short (it must be skipped and counted), and in round 3 its
task raises an exception whose text names a file path and a patient (`debug-attack
site-2:raise=round3`). Then everything the server side holds is searched for every
identifying value and every site file path: each reply and failure as the strategy
received it (`debug-record-masked`), run.json, checkpoints, the final model, and the
records of every logger in the server's process. In simulation the sites' own logs
share the console, so the server's log is taken from its loggers, not from stdout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.recording import RecordingStrategy
from shared.config import RunConfig
from simulations.runner import SimulationOptions, run_simulation_job
from simulations.synth import generate_sites
from tests.privacy.conftest import (
    LogLines,
    check_no_hits,
    fit_metrics,
    positive_control,
    skipped,
    truncate,
)
from tests.privacy.search import Needles

pytestmark = pytest.mark.slow

SITES = ("site-1", "site-2", "site-3")
FAILING = "site-2"
SCHEDULE = {
    "num-server-rounds": 3,
    "local-epochs": 1,
    "image-size": 32,
    "batch-size": 8,
    "min-sites": 2,
    "device": "cpu",
    "debug-attack": f"{FAILING}:raise=round3",
    "debug-record-masked": True,
}


@dataclass
class SimRun:
    data: Path
    out: Path
    record: dict[str, Any]
    victim: Path
    log: str


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimRun]:
    root = tmp_path_factory.mktemp("privacy-sim")
    data, out = root / "data", root / "run"
    folders = generate_sites(data, n_sites=len(SITES), seed=11, scale=0.15)
    victim = sorted(folders[SITES.index(FAILING)].rglob("*.dcm"))[-1]
    # The file goes bad between rounds 1 and 2: after the server has recorded round 1.
    original = RecordingStrategy.aggregate_evaluate

    def aggregate_then_break(self, server_round, results, failures):  # type: ignore[no-untyped-def]
        outcome = original(self, server_round, results, failures)
        if server_round == 1:
            truncate(victim)
        return outcome

    handler = LogLines()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(), logging.getLogger("flwr"), logging.getLogger("medfleet")]
    for logger in loggers:
        logger.addHandler(handler)
    patch = pytest.MonkeyPatch()
    patch.setattr(RecordingStrategy, "aggregate_evaluate", aggregate_then_break)
    try:
        run = RunConfig.from_mapping({**SCHEDULE, "sim-data-root": str(data), "out-dir": str(out)})
        record = run_simulation_job(SimulationOptions(run, len(SITES), data))
    finally:
        patch.undo()
        for logger in loggers:
            logger.removeHandler(handler)
    yield SimRun(data, out, record, victim, "\n".join(handler.lines))


def test_the_failing_site_is_counted_and_scrubbed(sim_run: SimRun) -> None:
    # Assert: the run went on without the failing site, the bad file skipped and counted
    record = sim_run.record
    assert record["status"] == "completed", record.get("error")
    before, after = fit_metrics(record, 1, FAILING), fit_metrics(record, 2, FAILING)
    assert before is not None and after is not None
    assert skipped(after) == skipped(before) + 1
    round_3 = next(r for r in record["rounds"] if r["round"] == 3)
    assert FAILING not in round_3["fit"]["sites"]
    assert sorted(round_3["fit"]["sites"]) == ["site-1", "site-3"]
    errors = round_3["errors"]
    assert len(errors) == 1 and errors[0].startswith("InjectedFault at the site"), errors
    # The exception did name a path and a patient: at the site, not here
    assert str(sim_run.victim.parent) not in errors[0]


def test_the_server_side_holds_no_identifier_and_no_site_path(sim_run: SimRun) -> None:
    # Prepare
    folders = {name: sim_run.data / name for name in SITES}
    needles = Needles.of_sites(sim_run.data, folders)
    received = sim_run.out / "received-debug"
    assert sorted(p.name for p in received.glob("*.json"))  # the replies were captured
    assert (sim_run.out / "checkpoints" / "round-3.npz").is_file()

    # Execute
    searched = check_no_hits(needles, [sim_run.out], {"server-process log": sim_run.log})

    # Assert: the search saw the run (bytes, needles) and its failure
    assert searched > 100_000 and len(needles) > 300
    assert "InjectedFault" in (received / "round-3-fit.json").read_text()
    print(f"\nsimulation: {len(needles)} needles, {searched} bytes searched, hits: 0")


def test_the_search_finds_values_planted_in_a_copy(sim_run: SimRun, tmp_path: Path) -> None:
    # Prepare
    needles = Needles.of_sites(sim_run.data, {FAILING: sim_run.data / FAILING})

    # Execute
    found = positive_control(needles, [sim_run.out], tmp_path / "scratch")

    # Assert: all four planted values (text, number, path, name) are found
    assert len(found) == 4, found
