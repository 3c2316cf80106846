"""The site daemon: run Flower's SuperNode from a site kit, over TLS, and keep it running."""

from __future__ import annotations

import logging
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from client.isolation import (
    DEFAULT_HEARTBEAT_S,
    DEFAULT_IDLE_POLL_S,
    DEFAULT_POLL_S,
    HEARTBEAT_RANGE_S,
    announce_approvals,
    launcher_command,
    process_isolation,
    python_path,
)
from client.runtime_port import bind_failure, check_runtime_port, port_taken_error
from client.state_lock import StateDirLock
from shared import kit
from shared.address import split_address
from shared.errors import ConfigError, ProvisioningError
from shared.process import exit_on_sigterm, flower_env, spawn, stop

__all__ = [
    "DATA_CACHE_DIR",
    "SiteKit",
    "check_server_certificate",
    "claim_site",
    "run_site",
    "supernode_command",
    "task_data_folders",
]

log = logging.getLogger("medfleet.site.daemon")

# Each ClientApp task is a process of its own (a fork of the launcher), so an in-memory
# cache of decoded images dies with it: without a cache on disk a site decoded all its
# DICOM again for every training and evaluation request (160 images: 5-6 s a request,
# 1.7-1.9 s from the cache). The daemon keeps the tasks' preprocessed images here, in
# its state folder; `--node-config cache-dir=DIR` moves it, `cache-dir=` turns it off.
DATA_CACHE_DIR = "data-cache"

# Flower prints this (exit code 305) when the SuperLink refuses the site's key.
_REFUSED = "Failed to activate SuperNode"
# Flower refuses to activate a site whose previous session still counts as online there,
# until its heartbeats lapse (2 x 30 s after a crash), in the same words as an unknown key:
# a refusal is final only after this long, or when no restart is left.
_STALE_SESSION_S = 75.0
# Enough of the SuperNode's last output to hold the traceback of why it exited.
_TAIL_LINES = 40
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class SiteKit:
    """A validated site kit (see `medfleet provision`)."""

    root: Path
    name: str
    server_address: str
    ca_cert: Path
    auth_key: Path
    data_dir: str
    device: str

    @classmethod
    def load(cls, root: Path) -> SiteKit:
        """Read `site.toml` and check the files; refuse a key others can read."""
        root = root.resolve()
        settings = kit.read_kit_toml(root / kit.SITE_TOML).get("site", {})
        auth_key = root / kit.SITE_AUTH_KEY
        kit.check_private_key(auth_key)
        try:
            name, address = str(settings["name"]), str(settings["server-address"])
        except KeyError as err:
            raise ProvisioningError(f"{root / kit.SITE_TOML} lacks [site] {err}") from None
        split_address(address)
        return cls(
            root=root,
            name=name,
            server_address=address,
            ca_cert=kit.require_file(root / kit.CA_CERT, "CA certificate"),
            auth_key=auth_key,
            data_dir=str(settings.get("data-dir", "")),
            device=str(settings.get("device", "auto")),
        )


def task_data_folders(pairs: Iterable[str]) -> dict[str, Path]:
    """``TASK=DIR`` pairs of `site start --task-data` as task name -> absolute folder.

    Raises
    ------
    ConfigError
        For a pair without ``=``, an unknown task (with "did you mean"), a task named
        twice or a folder that is not a directory.
    """
    from monai.utils import look_up_option

    from shared.tasks import TASKS

    folders: dict[str, Path] = {}
    for pair in pairs:
        task, sep, folder = pair.partition("=")
        if not sep or not task or not folder:
            raise ConfigError(f"--task-data takes TASK=DIR (e.g. detection=/data/ct), got {pair!r}")
        try:
            look_up_option(task, TASKS)
        except ValueError as err:
            raise ConfigError(f"--task-data: {err}") from None
        if task in folders:
            raise ConfigError(f"--task-data names task '{task}' twice; give it one folder")
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"--task-data {task}=DIR: DIR is not a directory; check the path")
        if '"' in str(path):
            raise ConfigError("a data folder path must not contain double quotes")
        folders[task] = path
    return folders


def check_server_certificate(address: str, ca_cert: Path, timeout: float = 5.0) -> bool:
    """Check the server's TLS certificate against the kit's CA before starting.

    Returns
    -------
    bool
        True when verified, False when the server cannot be reached (the daemon then
        waits for it).

    Raises
    ------
    ProvisioningError
        When the server answers with a certificate the kit's CA did not sign, or one
        issued for another name.
    """
    host, port = split_address(address)
    context = ssl.create_default_context(cafile=str(ca_cert))
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except ssl.SSLCertVerificationError as err:
        raise ProvisioningError(
            f"the server at {address} presented a TLS certificate this kit does not trust "
            f"({err.verify_message}); the kit's ca.pem belongs to another federation or the "
            "server address is wrong: ask the coordinator for a current kit"
        ) from None
    except (OSError, ssl.SSLError):
        return False


def _node_config(kit_: SiteKit, data_dir: Path, device: str, extra: dict[str, str]) -> str:
    values = {
        "data-dir": str(data_dir),
        "site-name": kit_.name,
        "device": device,
        "require-secagg": "true",
        **extra,
    }
    parts = []
    for key, value in values.items():
        is_literal = value in ("true", "false") or value.lstrip("-").isdigit()
        parts.append(f"{key}={value}" if is_literal else f'{key}="{value}"')
    return " ".join(parts)


def supernode_command(
    kit_: SiteKit,
    data_dir: Path,
    device: str,
    runtime_port: int,
    node_config: dict[str, str] | None = None,
    poll_interval: float = DEFAULT_POLL_S,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_S,
    idle_poll_interval: float = DEFAULT_IDLE_POLL_S,
) -> list[str]:
    """Flower's SuperNode: TLS with the kit's CA, the kit's auth key (`client.supernode`)."""
    if '"' in str(data_dir):
        raise ConfigError("the data folder path must not contain double quotes")
    if not poll_interval > 0:
        raise ConfigError(f"--poll-interval must be > 0 seconds, got {poll_interval}")
    if not idle_poll_interval >= poll_interval:
        raise ConfigError(
            f"--idle-poll-interval must be at least --poll-interval ({poll_interval:g} s), "
            f"got {idle_poll_interval:g}"
        )
    if not HEARTBEAT_RANGE_S[0] <= heartbeat_interval <= HEARTBEAT_RANGE_S[1]:
        low, high = HEARTBEAT_RANGE_S
        raise ConfigError(
            f"--heartbeat-interval must be {low:g} to {high:g} seconds (the server refuses "
            f"others), got {heartbeat_interval:g}"
        )
    return [
        sys.executable, "-m", "client.supernode", "--poll-interval", str(poll_interval),
        "--heartbeat-interval", str(heartbeat_interval),
        "--idle-poll-interval", str(idle_poll_interval),
        "--superlink", kit_.server_address,
        "--root-certificates", str(kit_.ca_cert),
        "--auth-supernode-private-key", str(kit_.auth_key),
        "--node-config", _node_config(kit_, data_dir, device, node_config or {}),
        "--host", "127.0.0.1",
        "--port", str(runtime_port),
    ]  # fmt: skip


def _pump(stream: IO[bytes], sink: Path | None, refused: threading.Event, tail: deque[str]) -> None:
    """Copy the SuperNode's output to its log, keep the last lines, notice a refusal."""
    out = sink.open("ab") if sink is not None else None
    try:
        for line in iter(stream.readline, b""):
            if _REFUSED.encode() in line:
                refused.set()
            tail.append(_ANSI.sub("", line.decode(errors="replace")).rstrip())
            if out is not None:
                out.write(line)
                out.flush()
            else:
                print(line.decode(errors="replace"), end="", flush=True)
    finally:
        if out is not None:
            out.close()


@dataclass(frozen=True)
class _Exit:
    """How one SuperNode process ended."""

    code: int
    seconds: float
    refused: bool
    tail: tuple[str, ...]

    @property
    def cause(self) -> str:
        """The last output line: a traceback's last line names the error."""
        lines = [line.strip() for line in self.tail if line.strip()]
        return lines[-1][:200] if lines else "no output"


def _run_once(
    command: list[str], env: dict[str, str], log_file: Path | None, launcher: list[str]
) -> _Exit:
    """One SuperNode and its ClientApp launcher; both end when either exits."""
    started = time.monotonic()
    proc = spawn(command, env)
    gate = spawn([*launcher, "--parent-pid", str(proc.pid)], env)
    refused = threading.Event()
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    pumps = [
        threading.Thread(target=_pump, args=(p.stdout, log_file, flag, lines), daemon=True)
        for p, flag, lines in ((proc, refused, tail), (gate, threading.Event(), deque()))
    ]
    for pump in pumps:
        pump.start()
    try:
        code = _wait_either(proc, gate)
    finally:
        stop(gate)
        stop(proc)
        for pump in pumps:
            pump.join(timeout=5)
    return _Exit(code, time.monotonic() - started, refused.is_set(), tuple(tail))


def _wait_either(proc: subprocess.Popen[bytes], gate: subprocess.Popen[bytes]) -> int:
    """The SuperNode's exit code; if the launcher dies first, stop the SuperNode too."""
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if gate.poll() is not None:
                log.warning("the ClientApp launcher exited with code %s", gate.returncode)
                stop(proc)
                return proc.wait()


def claim_site(state_dir: Path, runtime_port: int) -> StateDirLock:
    """Take the state folder's lock and check the runtime port, naming every clash at once.

    Raises
    ------
    ConfigError
        Naming `--state-dir` (with the holder's PID) and/or `--runtime-port`.
    """
    lock = StateDirLock(state_dir)
    problems = []
    for check in (lock.acquire, lambda: check_runtime_port(runtime_port)):
        try:
            check()
        except ConfigError as err:
            problems.append(str(err))
    if problems:
        lock.release()
        raise ConfigError("this site daemon cannot start: " + "; and ".join(problems))
    return lock


def run_site(
    kit_: SiteKit,
    data_dir: Path,
    device: str,
    *,
    state_dir: Path,
    runtime_port: int = 9094,
    node_config: dict[str, str] | None = None,
    max_restarts: int | None = None,
    log_file: Path | None = None,
    allow_any_app: bool = False,
    clientapp_start: str = "fork",
    poll_interval: float = DEFAULT_POLL_S,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_S,
    idle_poll_interval: float = DEFAULT_IDLE_POLL_S,
) -> int:
    """Run the SuperNode until stopped; restart it after crashes, stop on refusal.

    The SuperNode runs with `--isolation process`: its ClientApp processes are started by
    `client.launcher`, and only for apps approved in ``STATE_DIR/approved-apps.json``
    (any app with `allow_any_app`), as forks of the launcher (`clientapp_start="fork"`,
    see `client.warm`) or as fresh `flwr-clientapp` processes (`"spawn"`).

    Flower's SuperNode itself retries without limit while the server is away and
    reconnects after a server restart. This loop adds restarts after the SuperNode
    process dies (with a growing pause, at most 60 s), except when the runtime port is
    taken or the server refuses the site's key, which a restart cannot fix. A refusal
    in the first 75 s is retried (unless no restart is left): it is also how Flower
    answers a site restarted before its crashed session's heartbeats lapsed. The state
    folder stays locked until this returns.

    Raises
    ------
    ConfigError
        When the data folder is missing, or the state folder or runtime port is taken
        (before start, or when the SuperNode could not bind its runtime port).
    ProvisioningError
        When the server does not trust the site (unregistered key) or the site does not
        trust the server (certificate from another CA).
    """
    if not data_dir.is_dir():
        raise ConfigError(f"site data folder {data_dir} is not a directory; pass --data")
    default_cache = state_dir / DATA_CACHE_DIR
    node_config = {"cache-dir": str(default_cache), **(node_config or {})}
    command = supernode_command(
        kit_, data_dir, device, runtime_port, node_config, poll_interval, heartbeat_interval,
        idle_poll_interval,
    )  # fmt: skip
    with claim_site(state_dir, runtime_port):
        if node_config["cache-dir"] == str(default_cache):
            # Decoded pixels: as private as the DICOM they come from
            default_cache.mkdir(mode=0o700, exist_ok=True)
        announce_approvals(state_dir, allow_any_app)
        command += process_isolation(state_dir)
        launcher = launcher_command(kit_, state_dir, runtime_port, allow_any_app)
        launcher += ["--start", clientapp_start]
        if not check_server_certificate(kit_.server_address, kit_.ca_cert):
            log.warning("server %s is not reachable yet; waiting for it", kit_.server_address)
        exit_on_sigterm()
        env = flower_env(state_dir / "flwr-home", {"PYTHONPATH": python_path()})
        return _supervise(kit_, command, env, runtime_port, max_restarts, log_file, launcher)


def _supervise(
    kit_: SiteKit,
    command: list[str],
    env: dict[str, str],
    runtime_port: int,
    max_restarts: int | None,
    log_file: Path | None,
    launcher: list[str],
) -> int:
    """Start the SuperNode again after each exit, logging why it exited."""
    restarts, pause = 0, 2.0
    started = time.monotonic()
    while True:
        log.info("starting the SuperNode of site %s -> %s", kit_.name, kit_.server_address)
        ended = _run_once(command, env, log_file, launcher)
        exhausted = max_restarts is not None and restarts >= max_restarts
        if ended.refused and (exhausted or time.monotonic() - started > _STALE_SESSION_S):
            raise ProvisioningError(
                f"the server refused site '{kit_.name}': its authentication key is not "
                "registered there; ask the coordinator to add this site to the federation "
                "file, re-run `medfleet provision` and restart `medfleet server start`"
            )
        summary = f"SuperNode exited with code {ended.code} after {ended.seconds:.0f} s"
        log.warning("%s (%s)", summary, ended.cause)
        if bind_failure(ended.tail):
            raise port_taken_error(runtime_port)
        if exhausted:
            return ended.code
        restarts += 1
        if ended.refused:
            log.warning(
                "the server refused site %s; if this site stopped less than a minute ago, "
                "its previous session is still online there: retrying in 5 s",
                kit_.name,
            )
            time.sleep(5.0)
            continue
        log.warning("restarting the SuperNode in %.0f s (restart %d)", pause, restarts)
        time.sleep(pause)
        pause = min(pause * 2, 60.0)
