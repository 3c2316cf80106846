"""Proof in a real deployment (TLS, site authentication, SecAgg+): no identifier reaches the server.

Four site daemons on 127.0.0.1 whose DICOM headers carry realistic identities. After
round 1 one of site-b's files is cut short (skipped and counted), and in round 3 its
task raises an exception naming a file path and a patient (`debug-attack
site-b:raise=round3`, honoured by a site started with `debug-dump-dir`, as the test
fleet's are). SecAgg+ (3 shares, threshold 2) unmasks round 3 with the other three.
Then everything the server side holds is searched: the SuperLink's state folder (its
state database, its log, its Flower home), the logs and stdout of `server start` and
`server run`, run.json, checkpoints, the final model, the masked uploads and every
reply and failure as the strategy received them (`debug-record-masked`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment import harness
from tests.deployment.fleet import Fleet
from tests.privacy.conftest import (
    check_no_hits,
    fit_metrics,
    positive_control,
    skipped,
    truncate,
)
from tests.privacy.search import Needles

pytestmark = pytest.mark.slow

SITES = ("site-a", "site-b", "site-c", "site-d")
FAILING = "site-b"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet.create(tmp_path, SITES)
    try:
        yield fleet
    finally:
        strays = fleet.close()
    assert not strays, f"processes left running: {strays}"


def _round_done(record: dict, rnd: int) -> bool:
    entry = next((r for r in record.get("rounds", []) if r["round"] == rnd), None)
    return entry is not None and bool(entry["fit"]) and bool(entry["evaluate"])


def test_deployment_server_holds_no_identifier_and_no_site_path(fleet: Fleet) -> None:
    # Prepare
    out = fleet.root / "run"
    victim = sorted(fleet.data[FAILING].rglob("*.dcm"))[-1]
    fleet.start()
    args = fleet.run_args(
        out, "--rounds", "3", "--min-sites", "3", "--round-timeout", "120",
        "--set", "secagg-num-shares=3", "--set", "secagg-threshold=2",
        "--set", f"debug-attack={FAILING}:raise=round3", "--set", "debug-record-masked=true",
    )  # fmt: skip
    run = fleet.submit(args, "run.log")

    # Execute: the file goes bad once round 1 is recorded (round 2 starts with SecAgg+'s
    # key exchange, which reads no data), then the run ends
    harness.wait_json(out / "run.json", lambda r: _round_done(r, 1), 400, [run])
    truncate(victim)
    code = run.wait(timeout=600)
    record = harness.read_json(out / "run.json")

    # Assert 1: completed without the failing site's round-3 update; the file counted
    assert code == 0 and record["status"] == "completed", record.get("error")
    before, after = fit_metrics(record, 1, FAILING), fit_metrics(record, 2, FAILING)
    assert before is not None and after is not None
    assert skipped(after) == skipped(before) + 1
    round_3 = next(r for r in record["rounds"] if r["round"] == 3)
    assert sorted(round_3["fit"]["sites"]) == ["site-a", "site-c", "site-d"]
    assert any("InjectedFault at the site" in e for e in round_3["errors"]), round_3["errors"]
    # Assert 2: nothing the server side holds names an identifier or a site path
    assert fleet.app is not None
    # The app's own source (which the server stores and ships) names patterns like
    # IM00001.dcm: those needles say nothing about a site's data, so they are dropped.
    needles, dropped = Needles.of_sites(fleet.root / "data", fleet.data).without_those_in(fleet.app)
    assert len(dropped) < 10, dropped
    roots = [fleet.server_state, out, fleet.root / "server.log", fleet.root / "run.log"]
    assert (fleet.server_state / "superlink.db").is_file()
    assert sorted((out / "received-debug").glob("round-3-fit.json"))
    searched = check_no_hits(needles, roots, {})
    assert searched > 100_000 and len(needles) > 300
    # Assert 3: the same search finds values planted in a copy of those files
    found = positive_control(needles, [fleet.server_state, out], fleet.root / "scratch")
    assert len(found) == 4, found
    print(
        f"\ndeployment: {len(needles)} needles ({sorted(dropped)} dropped: in the app's "
        f"code), {searched} bytes searched, hits: 0"
    )
