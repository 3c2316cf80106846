"""One healthy deployment shared by this package's tests: TLS, site authentication, SecAgg+.

A real federation started with the commands docker/compose.yaml runs: `medfleet server
start` (nginx on the public address, the SuperLink on the server's loopback) and three
`medfleet site start` daemons with app approval on. Server and sites sit in separate
network namespaces joined by a bridge, so they really are different hosts (all on
127.0.0.1 where namespaces cannot be made, i.e. without root).

It is started once for the package, and the coordinator's 2-round run is submitted once:
the access tests (run first) try the Control API from another host while that run
trains, the approval tests add runs of a changed app, and the training tests check the
run's weights, then a server restart; the other tasks' rounds come last. The fault
tests start fleets of their own.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deployment import harness
from tests.deployment.fleet import Fleet
from tests.deployment.netns import Lan, netns_available

SITES = ("site-a", "site-b", "site-c")
ROUNDS = 2
MAX_WEIGHT = 100.0  # SecAgg+'s max weight for the run (the training tests need its value)


@dataclass
class TrainingRun:
    """The coordinator's `medfleet server run`, started in the background."""

    proc: subprocess.Popen[bytes]
    out: Path
    log: Path

    def finish(self, timeout: float = 600) -> Path:
        """Wait until it ended successfully; return its output folder."""
        code = self.proc.wait(timeout=timeout)
        assert code == 0, self.log.read_text(errors="replace")[-3000:]
        assert (self.out / "run.json").is_file(), self.log.read_text(errors="replace")[-3000:]
        return self.out


@pytest.fixture(scope="package")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    lan = Lan(SITES) if netns_available() is None else None
    # The sites also take part in a detection and a series study (test_training_tasks.py).
    more = (("detection", 0.2), ("series", 0.15))
    fleet = Fleet.create(tmp_path_factory.mktemp("federation"), SITES, lan=lan, more_tasks=more)
    try:
        if lan:
            lan.up()
        fleet.start()
        yield fleet
    finally:
        strays = fleet.close()
        if lan:
            lan.down()
    assert not strays, f"left running: {strays}"


@pytest.fixture(scope="package")
def training_run(federation: Fleet) -> TrainingRun:
    """Submitted and training (its run.json exists); the server records what it received."""
    out = federation.root / "run"
    args = federation.run_args(
        out, "--rounds", str(ROUNDS), "--set", f"secagg-max-weight={MAX_WEIGHT}",
        "--set", "debug-record-masked=true",
    )  # fmt: skip
    proc = federation.submit(args, "server-run.log")
    harness.wait_json(out / "run.json", lambda record: True, 300, [proc])
    return TrainingRun(proc, out, federation.root / "server-run.log")


@pytest.fixture(scope="package")
def finished_run(training_run: TrainingRun) -> Path:
    """The output folder of the coordinator's run, once it completed."""
    return training_run.finish()
