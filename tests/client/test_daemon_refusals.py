"""Site daemons that cannot start say why: taken state folder or runtime port, bind failures."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import client.daemon as daemon
from client.daemon import SiteKit, run_site
from client.runtime_port import bind_failure
from client.state_lock import LOCK_NAME, StateDirLock
from shared.errors import ConfigError
from tests.deployment.harness import REPO, free_port, run_cli

# A second process that takes the state folder's lock, as a running daemon does.
_HOLD_LOCK = """
import sys, time
from pathlib import Path
from client.state_lock import StateDirLock
StateDirLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(120)
"""
# The line uvicorn prints when the SuperNode's runtime port is taken (Flower 1.42).
_UVICORN_BIND = (
    "ERROR:    [Errno 98] error while attempting to bind on address "
    "('127.0.0.1', 9094): address already in use"
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "dicom").mkdir()
    return tmp_path / "dicom"


@pytest.fixture
def hold_lock() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(state_dir: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(state_dir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def listener() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _site_start(kit: SiteKit, data: Path, state: Path, port: int, home: Path):
    args = ["site", "start", "--kit", str(kit.root), "--data", str(data), "--device", "cpu"]
    args += ["--state-dir", str(state), "--runtime-port", str(port)]
    # A bound on a hang, not a speed: in the full suite this process shares the test
    # workers' CPU share beside the fleets' (it ran past 60 s at load 26)
    return run_cli(args, home, timeout=240)


def _can_take(state_dir: Path) -> bool:
    lock = StateDirLock(state_dir)
    try:
        lock.acquire()
    except ConfigError:
        return False
    lock.release()
    return True


def test_second_daemon_on_a_state_dir_is_refused_naming_the_holder(
    site_kit: SiteKit, data_dir: Path, tmp_path: Path, hold_lock
) -> None:
    # Prepare
    state = tmp_path / "state"
    holder = hold_lock(state)

    # Execute
    result = _site_start(site_kit, data_dir, state, free_port(), tmp_path / "home")

    # Assert
    assert result.returncode == 2, result.stderr
    assert "--state-dir" in result.stderr and f"PID {holder.pid}" in result.stderr
    assert "--runtime-port" not in result.stderr
    assert (state / LOCK_NAME).read_text().strip() == str(holder.pid)


def test_a_killed_daemon_leaves_no_lock(
    site_kit: SiteKit, data_dir: Path, tmp_path: Path, hold_lock, listener: int
) -> None:
    # Prepare: the holder dies without cleaning up; its lock file stays behind.
    state = tmp_path / "state"
    holder = hold_lock(state)
    assert not _can_take(state)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    assert (state / LOCK_NAME).read_text().strip() == str(holder.pid)

    # Execute: a new daemon gets past the state folder (and stops at the taken port).
    result = _site_start(site_kit, data_dir, state, listener, tmp_path / "home")

    # Assert
    assert result.returncode == 2, result.stderr
    assert "--runtime-port" in result.stderr and "--state-dir" not in result.stderr
    assert _can_take(state)


def test_taken_runtime_port_is_refused_with_a_free_one_suggested(
    site_kit: SiteKit, data_dir: Path, tmp_path: Path, listener: int
) -> None:
    # Execute
    with pytest.raises(ConfigError) as err:
        run_site(site_kit, data_dir, "cpu", state_dir=tmp_path / "state", runtime_port=listener)

    # Assert
    message = str(err.value)
    assert f"runtime port {listener}" in message and "--state-dir" not in message
    suggested = int(message.rsplit("--runtime-port ", 1)[1])
    assert suggested > listener
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", suggested))  # the suggestion is free
    # The refusal released the state folder in this same process.
    assert _can_take(tmp_path / "state")


def test_both_clashes_are_named_at_once(
    site_kit: SiteKit, data_dir: Path, tmp_path: Path, listener: int
) -> None:
    # Prepare
    state = tmp_path / "state"

    # Execute
    with StateDirLock(state), pytest.raises(ConfigError) as err:
        run_site(site_kit, data_dir, "cpu", state_dir=state, runtime_port=listener)

    # Assert
    assert "--state-dir" in str(err.value) and "--runtime-port" in str(err.value)
    assert f"PID {os.getpid()}" in str(err.value)


def test_lock_records_the_pid_and_clears_it_on_release(tmp_path: Path) -> None:
    # Prepare
    lock = StateDirLock(tmp_path / "new" / "state")

    # Execute / Assert
    with lock:
        assert lock.held and lock.path.read_text() == f"{os.getpid()}\n"
        assert not _can_take(lock.state_dir)
    assert not lock.held and lock.path.read_text() == ""
    assert _can_take(lock.state_dir)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (_UVICORN_BIND, True),
        ("RuntimeError: SuperNode Runtime HTTP API failed to start.", True),
        ("OSError: [Errno 98] Address already in use", True),
        ("INFO :      Starting Flower SuperNode", False),
        ("grpc: failed to connect to all addresses; last error: UNAVAILABLE", False),
    ],
)
def test_bind_failure_is_recognised_in_supernode_output(line: str, expected: bool) -> None:
    assert bind_failure(["INFO:     Application startup complete.", line]) is expected


def test_supernode_bind_failure_stops_the_restarts(
    site_kit: SiteKit,
    data_dir: Path,
    tmp_path: Path,
    listener: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: the port is taken after the check (a race), so the real SuperNode fails.
    monkeypatch.setattr(daemon, "check_runtime_port", lambda port: None)
    monkeypatch.setattr(daemon.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(daemon, "exit_on_sigterm", lambda: None)  # keep pytest's handler
    log_file = tmp_path / "supernode.log"

    # Execute
    with (
        caplog.at_level(logging.WARNING, "medfleet.site.daemon"),
        pytest.raises(ConfigError) as err,
    ):
        run_site(
            site_kit,
            data_dir,
            "cpu",
            state_dir=tmp_path / "state",
            runtime_port=listener,
            max_restarts=3,
            log_file=log_file,
        )

    # Assert: one attempt, the cause in the daemon's own log, the fix in the error.
    assert f"runtime port {listener}" in str(err.value) and "--runtime-port" in str(err.value)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    exits = [w for w in warnings if "SuperNode exited with code" in w]
    assert len(exits) == 1 and "Runtime HTTP API failed to start" in exits[0]
    assert "address already in use" in log_file.read_text()
    assert _can_take(tmp_path / "state")


def test_each_restart_logs_why_the_supernode_exited(
    site_kit: SiteKit,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: a stand-in SuperNode that fails at once with its reason on the last line.
    crash = [sys.executable, "-c", "print('starting'); print('OSError: disk full'); exit(3)"]
    monkeypatch.setattr(daemon, "supernode_command", lambda *args: crash)
    monkeypatch.setattr(daemon.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(daemon, "exit_on_sigterm", lambda: None)  # keep pytest's handler

    # Execute
    with caplog.at_level(logging.WARNING, "medfleet.site.daemon"):
        code = run_site(
            site_kit,
            data_dir,
            "cpu",
            state_dir=tmp_path / "state",
            runtime_port=free_port(),
            max_restarts=2,
            log_file=tmp_path / "supernode.log",
        )

    # Assert
    assert code == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    exits = [w for w in warnings if w.startswith("SuperNode exited with code 3 after")]
    assert len(exits) == 3 and all(w.endswith("(OSError: disk full)") for w in exits)
    assert sum("restarting the SuperNode" in w for w in warnings) == 2
    assert _can_take(tmp_path / "state")
