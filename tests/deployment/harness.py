"""A real federation on 127.0.0.1 for tests: one SuperLink, N SuperNodes, all stopped by PID."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from shared.process import flower_env, spawn, stop

REPO = Path(__file__).resolve().parents[2]
APP_PARTS = ("server", "client", "shared", "pyproject.toml")
# Run-config keys the tests set that the app's pyproject may not declare yet.


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def medfleet(args: Sequence[str]) -> list[str]:
    """Command line of the `medfleet` CLI with this interpreter."""
    return [sys.executable, "-m", "shared.cli", *args]


def copy_app(dest: Path) -> Path:
    """Copy the Flower app (code + pyproject) so the FAB holds nothing else."""
    for part in APP_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        else:
            shutil.copy2(src, dest / part)
    return dest


def server_start_args(kit: str, state_dir: str, host: str) -> list[str]:
    """`medfleet server start` as docker/compose.yaml runs it (tests may append options)."""
    return ["server", "start", "--kit", kit, "--state-dir", state_dir, "--host", host]


def site_start_args(kit: str, data: str, device: str, state_dir: str) -> list[str]:
    """`medfleet site start` as docker/compose.yaml runs it (tests may append options)."""
    return [
        "site",
        "start",
        "--kit",
        kit,
        "--data",
        data,
        "--device",
        device,
        "--state-dir",
        state_dir,
    ]


def run_cli(
    args: Sequence[str], home: Path, timeout: float = 60, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `medfleet ...` to completion (after `prefix`, e.g. `ip netns exec NS`)."""
    return subprocess.run(
        [*prefix, *medfleet(args)],
        cwd=REPO,
        env=flower_env(home, {"PYTHONPATH": str(REPO)}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Processes:
    """Background processes of one test module; `close` stops every one by PID."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: Sequence[str], log_file: Path, cli: bool = True, prefix: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        command = [*prefix, *(medfleet(args) if cli else args)]
        env = flower_env(self.home, {"PYTHONPATH": str(REPO)})
        proc = spawn(command, env, log_file)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc, timeout=15)
        self.procs.clear()


def wait_for(
    log_file: Path, pattern: str, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> str:
    """Wait until `log_file` matches `pattern`; fail with the log tail otherwise."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = log_file.read_text(errors="replace") if log_file.exists() else ""
        if re.search(pattern, text):
            return text
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} not in {log_file.name} after {timeout} s:\n{text[-3000:]}")


def pid_alive(pid: int) -> bool:
    """True while a process with this PID exists (and is not a zombie we own)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
