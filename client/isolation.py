"""How the site daemon runs ClientApps: SuperNode in process isolation, our launcher beside it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from client.approval import ApprovalStore
from client.runtime_port import RUNTIME_HOST

if TYPE_CHECKING:
    from client.daemon import SiteKit

__all__ = [
    "CLIENTAPP_STARTS",
    "DEFAULT_HEARTBEAT_S",
    "DEFAULT_IDLE_POLL_S",
    "DEFAULT_POLL_S",
    "HEARTBEAT_RANGE_S",
    "announce_approvals",
    "launcher_command",
    "process_isolation",
    "python_path",
]

log = logging.getLogger("medfleet.site.daemon")

# How the launcher starts a ClientApp task: forked warm (client.warm) or a fresh process.
CLIENTAPP_STARTS = ("fork", "spawn")
# The SuperNode's idle wait between polls (Flower's own is 3 s; see client.supernode), and
# what it backs off to after half a minute without a message.
DEFAULT_POLL_S = 1.0
DEFAULT_IDLE_POLL_S = 5.0
# The SuperNode's heartbeat interval (Flower's own): the server counts a site offline two
# intervals after its last heartbeat, and lets a restarted site back in only then.
DEFAULT_HEARTBEAT_S = 30.0
HEARTBEAT_RANGE_S = (10.0, 1800.0)  # what Flower's SuperLink accepts
# Shared with the launcher so that only it may claim the SuperNode's ClientApp tasks.
SECRET_NAME = "superexec.secret"


def launcher_command(
    kit_: SiteKit, state_dir: Path, runtime_port: int, allow_any_app: bool
) -> list[str]:
    """`python -m client.launcher`: starts ClientApp processes for approved apps only."""
    command = [sys.executable, "-m", "client.launcher",
               "--runtime-api-address", f"{RUNTIME_HOST}:{runtime_port}",
               "--state-dir", str(state_dir), "--site", kit_.name,
               "--superexec-auth-secret-file", str(state_dir / SECRET_NAME)]  # fmt: skip
    return [*command, "--allow-any-app"] if allow_any_app else command


def process_isolation(state_dir: Path) -> list[str]:
    """SuperNode options: no SuperExec of its own, tasks only for who holds a new secret."""
    secret = state_dir / SECRET_NAME
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when an older file had looser permissions
    with os.fdopen(fd, "wb") as out:
        out.write(os.urandom(32))
    return ["--isolation", "process", "--superexec-auth-secret-file", str(secret)]


def announce_approvals(state_dir: Path, allow_any_app: bool) -> None:
    """Log at start what this site will run (a damaged store stops the daemon here)."""
    if allow_any_app:
        log.warning("--allow-any-app: this site runs ANY app the server sends (test use only)")
        return
    approved = ApprovalStore(state_dir).apps()
    log.info("%d app(s) approved to run here (`medfleet site apps`)", len(approved))
    if not approved:
        log.warning("no app approved yet: every run is refused until `medfleet site approve`")


def python_path() -> str:
    """PYTHONPATH with this code's folder, so `python -m client.launcher` finds it."""
    here = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), here) if p)
