"""Starting and stopping Flower's long-running processes (SuperLink, SuperNode) by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["exit_on_sigterm", "flower_env", "flower_executable", "spawn", "stop"]


def flower_executable(name: str) -> str:
    """Path of a Flower console script installed next to this Python (venv or image)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


#: How often a SuperExec asks for the next app process to start (Flower's default: 1 s).
SUPEREXEC_POLL_SECONDS = "0.2"


def flower_env(flwr_home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for Flower processes: own FLWR_HOME, no telemetry, no update check.

    Flower's processes start helpers (`flower-superexec`, `flwr-serverapp`, ...) by name,
    so this Python's script folder goes first on PATH. The SuperExec that starts a
    ClientApp (or ServerApp) process per message looks for work every 0.2 s instead of
    Flower's 1 s (one local request each; SecAgg+ sends five messages a round). Set
    FLWR_SUPEREXEC_TASK_POLL_INTERVAL yourself to change it.
    """
    env = {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": SUPEREXEC_POLL_SECONDS, **os.environ}
    env.update(
        {
            "FLWR_HOME": str(flwr_home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def spawn(
    command: Sequence[str], env: Mapping[str, str], log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` in its own session (so its helpers can be stopped with it).

    Output goes to `log_file` when given, else it is piped to the caller.
    """
    out = open(log_file, "ab") if log_file is not None else subprocess.PIPE  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(command),
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        if log_file is not None:
            out.close()  # type: ignore[union-attr]


def _descendants(pid: int) -> list[int]:
    """PIDs of every descendant of `pid`, read from Linux's /proc (empty elsewhere)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces: the fields after its ')' are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(), [])
        found.extend(children)
        queue.extend(children)
    return found


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """Stop a process we started, by its PID, then whatever it left behind.

    SIGTERM first (Flower shuts down cleanly), SIGKILL after `timeout` seconds. The
    session's process group id is the PID we started, so helpers are reached by that PID;
    descendants that started sessions of their own (the SuperLink's ServerApp process)
    are found beforehand by parentage and killed too.
    """
    helpers = _descendants(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in helpers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return proc.returncode


def exit_on_sigterm() -> None:
    """Turn SIGTERM (systemd, docker stop) into SystemExit so `finally` blocks stop children."""

    def _handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _handler)
