"""A site restarted right after a crash: Flower refuses it until the old session lapses."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

import client.daemon as daemon
from client.daemon import SiteKit, run_site
from shared.errors import ProvisioningError
from tests.deployment.harness import free_port

# A stand-in SuperNode: refused on its first start (a counter file), then exits 3.
_REFUSED_ONCE = (
    "import pathlib, sys\n"
    "n = pathlib.Path(sys.argv[1])\n"
    "first = not n.exists()\n"
    "n.write_text('1')\n"
    "print('[code: 2004] Failed to activate SuperNode.' if first else 'OSError: disk full')\n"
    "sys.exit(305 if first else 3)\n"
)


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(daemon, "exit_on_sigterm", lambda: None)  # keep pytest's handler


def _run(site_kit: SiteKit, tmp_path: Path, max_restarts: int | None) -> int:
    (tmp_path / "data").mkdir(exist_ok=True)
    return run_site(
        site_kit,
        tmp_path / "data",
        "cpu",
        state_dir=tmp_path / "state",
        runtime_port=free_port(),
        max_restarts=max_restarts,
        log_file=tmp_path / "supernode.log",
    )


def test_refusal_soon_after_start_is_retried(
    site_kit: SiteKit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    quiet: None,
) -> None:
    # Prepare
    command = [sys.executable, "-c", _REFUSED_ONCE, str(tmp_path / "count")]
    monkeypatch.setattr(daemon, "supernode_command", lambda *args: command)
    # Execute
    with caplog.at_level(logging.WARNING, "medfleet.site.daemon"):
        code = _run(site_kit, tmp_path, max_restarts=1)
    # Assert: the second start ran (its own exit code), the retry said why
    assert code == 3
    assert sum("previous session is still online" in r.getMessage() for r in caplog.records) == 1


def test_refusal_without_restarts_left_is_final(
    site_kit: SiteKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: None
) -> None:
    command = [sys.executable, "-c", _REFUSED_ONCE, str(tmp_path / "count")]
    monkeypatch.setattr(daemon, "supernode_command", lambda *args: command)
    with pytest.raises(ProvisioningError, match="not registered"):
        _run(site_kit, tmp_path, max_restarts=0)


def test_refusal_after_the_stale_session_window_is_final(
    site_kit: SiteKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: None
) -> None:
    # Prepare: every start refused, and the clock past the window after the first
    command = [sys.executable, "-c", "print('Failed to activate SuperNode'); exit(305)"]
    monkeypatch.setattr(daemon, "supernode_command", lambda *args: command)
    clock = iter([0.0, *[daemon._STALE_SESSION_S + 1] * 100])
    monkeypatch.setattr(daemon.time, "monotonic", lambda: next(clock))
    # Execute / Assert
    with pytest.raises(ProvisioningError, match="not registered"):
        _run(site_kit, tmp_path, max_restarts=None)
