"""The site's SuperNode waits --poll-interval when idle, and only that wait changes."""

from __future__ import annotations

import time
import types
from pathlib import Path

import pytest

from client import supernode
from client.daemon import SiteKit, supernode_command
from shared.errors import ConfigError


def _fake_loop() -> types.ModuleType:
    module = types.ModuleType("fake_loop")
    module.time = time  # type: ignore[attr-defined]
    return module


def test_flower_supernode_loop_has_the_one_idle_wait_we_replace() -> None:
    # Prepare: the installed Flower's loop (a release that moved it must fail here)
    from flwr.supernode import start_client_internal

    original = start_client_internal.time
    try:
        # Execute
        patched = supernode.set_poll_interval(start_client_internal, 0.25)
        # Assert
        assert patched is True
        assert isinstance(start_client_internal.time, supernode.PollClock)
    finally:
        start_client_internal.time = original


def test_poll_clock_shortens_only_the_idle_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    clock = supernode.PollClock(0.25)
    # Execute
    clock.sleep(3)
    clock.sleep(0.5)
    clock.sleep(0.1)
    # Assert: Flower's 3 s becomes 0.25 s, its other waits stay; the rest is `time`
    assert slept == [0.25, 0.5, 0.1]
    assert clock.monotonic is time.monotonic


def test_a_loop_without_the_expected_wait_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: a module whose source does not hold `time.sleep(3)` exactly once
    module = _fake_loop()
    monkeypatch.setattr(supernode.inspect, "getsource", lambda m: "time.sleep(5)\n")
    # Execute
    patched = supernode.set_poll_interval(module, 0.25)
    # Assert
    assert patched is False
    assert module.time is time


def test_supernode_command_carries_the_poll_interval(tmp_path: Path, site_kit: SiteKit) -> None:
    # Prepare
    site = site_kit
    # Execute
    cmd = supernode_command(site, tmp_path, "cpu", 9200, {}, poll_interval=0.5)
    # Assert: our module in front of Flower's SuperNode options
    assert cmd[1:5] == ["-m", "client.supernode", "--poll-interval", "0.5"]
    assert cmd[cmd.index("--superlink") + 1] == site.server_address
    with pytest.raises(ConfigError, match="--poll-interval must be > 0"):
        supernode_command(site, tmp_path, "cpu", 9200, {}, poll_interval=0)
