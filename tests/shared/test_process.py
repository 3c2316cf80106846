"""stop(): a started process, its session, and descendants that left for sessions of their own."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from shared.process import spawn, stop

# Starts a grandchild in a new session (as the SuperLink starts its ServerApp), prints its
# PID, then waits to be stopped.
_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def test_stop_also_ends_a_descendant_in_its_own_session() -> None:
    # Prepare
    proc = spawn([sys.executable, "-c", _PARENT], env={"PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    assert _alive(grandchild)

    # Execute
    stop(proc, timeout=5)

    # Assert
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)
    assert proc.poll() is not None


def test_flower_env_polls_fast_unless_the_admin_set_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.process import flower_env

    monkeypatch.delenv("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", raising=False)
    env = flower_env(tmp_path)
    assert env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] == "0.2"
    assert (env["FLWR_HOME"], env["FLWR_TELEMETRY_ENABLED"]) == (str(tmp_path), "0")
    monkeypatch.setenv("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "2.5")
    assert flower_env(tmp_path)["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] == "2.5"
