"""A real federation on 127.0.0.1 for tests: one SuperLink, N SuperNodes, all stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from shared.process import flower_env, spawn

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


def approve_app(state_dir: Path, app: Path | None = None) -> str:
    """Approve an app at a site (`medfleet site approve`), by default this checkout's app.

    The default is what `copy_app` copies now, built as `flwr run` builds it, so a run of
    any `copy_app` copy is approved. Returns the FAB hash.
    """
    import tempfile

    from client.approval import ApprovalStore, load_app

    with tempfile.TemporaryDirectory() as tmp:
        source = app if app is not None else copy_app(Path(tmp) / "app")
        bundle, origin = load_app(str(source))
        ApprovalStore(state_dir).approve(bundle, f"tests: {origin}")
    return bundle.hash


def _site_state_dir(args: Sequence[str]) -> Path | None:
    """The --state-dir of a `site start` that checks approvals (None for anything else)."""
    args = list(args)
    if args[:2] != ["site", "start"] or "--allow-any-app" in args or "--state-dir" not in args:
        return None
    return Path(args[args.index("--state-dir") + 1])


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
    """Run `medfleet ...` to completion (after `prefix`, e.g. `ip netns exec NS`).

    Past `timeout` it is killed, and the assertion error carries the end of its output.
    """
    try:
        return subprocess.run(
            [*prefix, *medfleet(args)],
            cwd=REPO,
            env=flower_env(home, {"PYTHONPATH": str(REPO)}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        said = b"".join(_bytes(part) for part in (err.stdout, err.stderr))
        tail = said.decode(errors="replace")[-4000:]
        raise AssertionError(
            f"medfleet {' '.join(args[:2])} ran past {timeout:g} s:\n{tail}"
        ) from None


def _bytes(output: bytes | str | None) -> bytes:
    return output.encode() if isinstance(output, str) else (output or b"")


class Processes:
    """Background processes of one test module; `close` stops every one by PID.

    A `medfleet site start` it starts first gets this checkout's app approved in its state
    folder (as a site admin would with `medfleet site approve`), unless `approve_apps` is
    False or the command says `--allow-any-app`.
    """

    def __init__(self, home: Path, approve_apps: bool = True) -> None:
        self.home = home
        self.approve_apps = approve_apps
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: Sequence[str], log_file: Path, cli: bool = True, prefix: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        state_dir = _site_state_dir(args) if cli and self.approve_apps else None
        if state_dir is not None:
            approve_app(state_dir)
        command = [*prefix, *(medfleet(args) if cli else args)]
        env = flower_env(self.home, {"PYTHONPATH": str(REPO)})
        proc = spawn(command, env, log_file)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Kill every process started and its descendants, all at once.

        SIGKILL, not a shutdown: a test's federation is thrown away with its folder, and
        the SuperLink's graceful exit alone takes 12 s (Flower stops its gRPC servers one
        after another, then waits for its threads). Graceful stops are tested where they
        matter (`tests/shared/test_process.py`, the server restart the sites survive).
        """
        trees = [process_tree(proc.pid) for proc in self.procs]
        for proc in (p for tree in trees for p in tree):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs([p for tree in trees for p in tree], timeout=10)
        for proc in self.procs:
            proc.wait(timeout=10)  # reap our own children
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


def federation_file(path: Path, address: str, sites: Sequence[str]) -> Path:
    """Write the federation TOML that `provision` reads: the server address and site names."""
    names = ", ".join(f'"{s}"' for s in sites)
    path.write_text(f'[server]\naddress = "{address}"\n[sites]\nnames = [{names}]\n')
    return path


def process_tree(pid: int) -> list[psutil.Process]:
    """The process `pid` and every descendant, parent first (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(pid: int, timeout: float = 15) -> dict[int, str]:
    """SIGKILL a process and all its descendants (a crash, not a shutdown); wait until gone.

    The parent dies first so that it cannot start replacements (the site daemon restarts
    its SuperNode). Returns each killed PID with its command line.
    """
    procs = process_tree(pid)
    killed = {proc.pid: command_line(proc) for proc in procs}
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    if alive:
        raise AssertionError(f"still running after SIGKILL: {[p.pid for p in alive]}")
    return killed


def command_line(proc: psutil.Process) -> str:
    """The first words of a process's command line, without folders (for messages)."""
    try:
        return " ".join(Path(part).name for part in proc.cmdline()[:4])
    except psutil.Error:
        return "(gone)"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file written atomically by the server (empty dict while it does not exist)."""
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return {}


def wait_json(
    path: Path,
    until: Callable[[dict[str, Any]], bool],
    timeout: float,
    procs: Sequence[subprocess.Popen[bytes]] = (),
) -> dict[str, Any]:
    """Poll a JSON file (run.json) until `until(record)`; fail with the record otherwise.

    Fails early when one of `procs` (e.g. the `server run` it comes from) exits.
    """
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        record = read_json(path)
        if record and until(record):
            return record
        if any(proc.poll() is not None for proc in procs):
            break
        time.sleep(0.2)
    raise AssertionError(f"{path.name}: condition not met after {timeout} s:\n{record}")


def stray_processes(root: Path) -> list[psutil.Process]:
    """Processes whose environment points into `root` (FLWR_HOME of everything a test starts).

    Children inherit the environment, so this also finds helpers whose parent was killed
    (orphans are re-parented and fall out of every process tree).
    """
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and any(str(root) in v for v in proc.environ().values()):
                found.append(proc)
    return found
