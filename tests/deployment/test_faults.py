"""Faults in a real deployment on 127.0.0.1 (TLS, site authentication, SecAgg+).

1. The server crashes (SIGKILL of the SuperLink and its ServerApp) mid-run: restarted on
   the same state folder and resumed, the run loses no completed round and continues
   from exactly the last checkpoint.
2. A site dies mid-round: the round ends by round-timeout with the other sites, the run
   goes on, the site rejoins after a restart; with too few sites left the run stops
   with an error naming min-sites, in bounded time, its checkpoints intact.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.checkpoint import load_checkpoint
from tests.deployment import harness
from tests.deployment.fleet import Fleet

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet3(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet.create(tmp_path, ("site-a", "site-b", "site-c"))
    try:
        yield fleet
    finally:
        strays = fleet.close()
    assert not strays, f"processes left running: {strays}"


@pytest.fixture
def fleet4(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet.create(tmp_path, ("site-a", "site-b", "site-c", "site-d"))
    try:
        yield fleet
    finally:
        strays = fleet.close()
    assert not strays, f"processes left running: {strays}"


def _round(record: dict[str, Any], rnd: int) -> dict[str, Any] | None:
    return next((r for r in record.get("rounds", []) if r["round"] == rnd), None)


def _complete(record: dict[str, Any], rnd: int) -> bool:
    entry = _round(record, rnd)
    return entry is not None and bool(entry["fit"]) and bool(entry["evaluate"])


def _received(path: Path) -> list[np.ndarray]:
    with np.load(path) as npz:
        keys = sorted((k for k in npz.files if k.startswith("received_")), key=_index)
        return [npz[k] for k in keys]


def _index(key: str) -> int:
    return int(key.rsplit("_", 1)[1])


def _wait_file(paths: list[Path], timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in paths:
            if path.exists():
                return path
        time.sleep(0.2)
    raise AssertionError(f"none of {[p.name for p in paths]} appeared within {timeout} s")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_server_crash_is_resumed_with_no_round_lost(fleet3: Fleet) -> None:
    # Prepare: a 5-round SecAgg+ run; the server is killed mid-round 3
    fleet, out = fleet3, fleet3.root / "run"
    fleet.start()
    run = fleet.submit(fleet.run_args(out, "--rounds", "5", "--round-timeout", "120"), "run.log")
    t0 = time.monotonic()
    harness.wait_json(out / "run.json", lambda r: _complete(r, 2), 600, [run])
    # Round 3 under way: a site has trained; SecAgg+ still has to unmask before it counts
    _wait_file([fleet.dumps(site) / "round-3.npz" for site in fleet.sites], 300)
    t_crash = time.monotonic()
    killed = fleet.crash_server()
    before = harness.read_json(out / "run.json")
    checkpoint_2 = out / "checkpoints" / "round-2.npz"
    sha_2 = _sha(checkpoint_2)
    assert run.wait(timeout=60) != 0  # the submitting `server run` notices the crash
    assert not (out / "checkpoints" / "round-3.npz").exists()  # the crash was in round 3
    assert before["status"] == "running"
    commands = " | ".join(killed.values())
    assert "server.superlink" in commands and "flwr-serverapp" in commands, commands
    # Execute: the same `server start` on the same state folder, then `server run --resume`
    log_file = fleet.start_server("server-restarted.log")
    fleet.wait_online(log_file, fleet.sites)
    t_back = time.monotonic()
    wall_resume = time.time()
    done = harness.run_cli(fleet.resume_args(out), fleet.procs.home, timeout=1200)
    t_done = time.monotonic()
    # Assert: completed, every round once, resumed after round 2, round 3 from checkpoint 2
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = harness.read_json(out / "run.json")
    assert record["status"] == "completed"
    assert [r["round"] for r in record["rounds"]] == [1, 2, 3, 4, 5]
    assert all(_complete(record, rnd) for rnd in range(1, 6))
    assert [r["round"] for r in before["rounds"] if r["fit"]] == [1, 2]
    assert [(r["after_round"], r["discarded_partial_rounds"]) for r in record["resumes"]] == [
        (2, [])
    ]
    assert record["rounds"][:2] == before["rounds"][:2]  # the completed rounds, untouched
    assert _sha(checkpoint_2) == sha_2
    state_2 = list(load_checkpoint(checkpoint_2).state.values())
    state_1 = list(load_checkpoint(out / "checkpoints" / "round-1.npz").state.values())
    assert not all(np.array_equal(a, b) for a, b in zip(state_1, state_2, strict=True))
    for site in fleet.sites:
        dump = fleet.dumps(site) / "round-3.npz"
        assert dump.stat().st_mtime > wall_resume  # written by the resumed run
        received = _received(dump)
        assert len(received) == len(state_2)
        assert all(np.array_equal(a, b) for a, b in zip(received, state_2, strict=True)), site
    completed_before = [r["round"] for r in before["rounds"] if r["fit"] and r["evaluate"]]
    lost = len([k for k in completed_before if k > record["resumes"][0]["after_round"]])
    assert lost == 0
    print(
        f"\nserver crash: killed in round 3, {t_crash - t0:.0f} s into the run: {commands}; "
        f"server back with all sites online {t_back - t_crash:.0f} s after the crash; "
        f"resumed rounds 3-5 took {t_done - t_back:.0f} s; rounds lost on resume: {lost}"
    )


def _fit_sites(record: dict[str, Any], rnd: int) -> list[str]:
    entry = _round(record, rnd)
    return sorted(entry["fit"]["sites"]) if entry and entry["fit"] else []


ROUND_TIMEOUT = 60.0


def test_dropped_sites_never_hang_a_run(fleet4: Fleet) -> None:
    # Prepare: 4 sites, SecAgg+ with 3 shares (threshold 2), rounds need min-sites=3
    fleet, out = fleet4, fleet4.root / "run"
    fleet.start()
    args = fleet.run_args(
        out, "--rounds", "8", "--min-sites", "3", "--round-timeout", f"{ROUND_TIMEOUT:g}",
        "--set", "secagg-num-shares=3", "--set", "secagg-threshold=2",
    )  # fmt: skip
    run = fleet.submit(args, "run.log")
    runjson = out / "run.json"
    harness.wait_json(runjson, lambda r: _complete(r, 1), 600, [run])
    # Execute 1: site-d dies as round 2 starts
    t_kill = time.monotonic()
    fleet.crash_site("site-d")
    harness.wait_for(fleet.root / "run.log", "did not answer before masking", 2 * ROUND_TIMEOUT)
    t_left_out = time.monotonic() - t_kill
    # Execute 2: site-d restarts on its kit and state folder (round 2 goes on without it)
    t_restart = time.monotonic()
    fleet.start_site("site-d")
    record = harness.wait_json(runjson, lambda r: _complete(r, 2), 4 * ROUND_TIMEOUT, [run])
    t_round = time.monotonic() - t_kill
    # Assert 1: round 2 completed with the other three; site-d recorded as dropped
    assert _fit_sites(record, 2) == ["site-a", "site-b", "site-c"]
    assert _round(record, 2)["dropped"] == ["site-d"]  # type: ignore[index]
    record = harness.wait_json(
        runjson,
        lambda r: any("site-d" in _fit_sites(r, k) for k in range(3, 9)),
        6 * ROUND_TIMEOUT,
        [run],
    )
    back = next(k for k in range(3, 9) if "site-d" in _fit_sites(record, k))
    t_back = time.monotonic() - t_restart
    # Assert 2: it took part in a later round with everyone
    assert _fit_sites(record, back) == ["site-a", "site-b", "site-c", "site-d"]
    harness.wait_json(runjson, lambda r: _complete(r, back), 4 * ROUND_TIMEOUT, [run])
    # Execute 3: two of four die; the next round cannot reach min-sites=3
    t_kill2 = time.monotonic()
    fleet.crash_site("site-c")
    fleet.crash_site("site-d")
    code = run.wait(timeout=5 * ROUND_TIMEOUT + 120)
    t_stop = time.monotonic() - t_kill2
    # Assert 3: stopped with an error naming min-sites, in bounded time; checkpoints intact
    record = harness.read_json(runjson)
    assert code != 0
    assert record["status"] == "failed", record.get("status")
    assert "min-sites=3" in record["error"], record["error"]
    completed = [r["round"] for r in record["rounds"] if r["fit"]]
    assert completed == list(range(1, back + 1))
    for rnd in completed:
        assert load_checkpoint(out / "checkpoints" / f"round-{rnd}.npz").server_round == rnd
    assert not (out / "checkpoints" / f"round-{back + 1}.npz").exists()
    print(
        f"\nsite drop: site-d left out {t_left_out:.0f} s after it died, round 2 completed "
        f"{t_round:.0f} s after (round-timeout {ROUND_TIMEOUT:g} s); site-d back in round "
        f"{back}, {t_back:.0f} s "
        f"after its restart; two sites down: run stopped {t_stop:.0f} s after, exit {code}: "
        f"{record['error']}"
    )
