"""The site's SuperNode waits --poll-interval when idle and beats every --heartbeat-interval."""

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


class _Clock:
    """`time.monotonic` and `time.sleep` of a test: sleeping moves the clock on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_flower_supernode_loop_has_the_one_idle_wait_we_replace() -> None:
    # Prepare: the installed Flower's loop (a release that moved it must fail here)
    from flwr.supernode import start_client_internal

    original = start_client_internal.time
    pull = start_client_internal._pull_and_store_message
    try:
        # Execute
        patched = supernode.set_poll_interval(start_client_internal, 0.25)
        # Assert: the wait replaced, the pull wrapped (it tells the clock of messages)
        assert patched is True
        assert isinstance(start_client_internal.time, supernode.PollClock)
        assert start_client_internal._pull_and_store_message is not pull
    finally:
        start_client_internal.time = original
        start_client_internal._pull_and_store_message = pull


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


def test_an_idle_supernode_backs_off_and_a_message_brings_the_quick_wait_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: a loop module whose pull answers from a script (None: no message)
    clock = _Clock()
    monkeypatch.setattr(time, "monotonic", clock.monotonic)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    answers = iter([None] * 70 + [7] + [None] * 3)
    module = _fake_loop()
    module._pull_and_store_message = lambda **kwargs: next(answers)  # type: ignore[attr-defined]
    monkeypatch.setattr(supernode.inspect, "getsource", lambda m: "time.sleep(3)\n")
    assert supernode.set_poll_interval(module, 0.5, idle_interval=4.0) is True
    # Execute: Flower's loop, 74 times: pull, and wait 3 s when nothing came
    for _ in range(74):
        if module._pull_and_store_message(state=None) is None:
            module.time.sleep(3)
    # Assert: 0.5 s for the first 30 s without a message, then doubling up to 4 s; after
    # the message (the 71st pull) 0.5 s again
    assert clock.slept[:60] == [0.5] * 60
    assert clock.slept[60:70] == [1.0, 2.0] + [4.0] * 8
    assert clock.slept[70:] == [0.5, 0.5, 0.5]


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
    assert cmd[1:9] == ["-m", "client.supernode", "--poll-interval", "0.5",
                        "--heartbeat-interval", "30.0", "--idle-poll-interval", "5.0"]  # fmt: skip
    assert cmd[cmd.index("--superlink") + 1] == site.server_address
    with pytest.raises(ConfigError, match="--poll-interval must be > 0"):
        supernode_command(site, tmp_path, "cpu", 9200, {}, poll_interval=0)
    with pytest.raises(ConfigError, match="--idle-poll-interval must be at least --poll"):
        supernode_command(site, tmp_path, "cpu", 9200, {}, poll_interval=2, idle_poll_interval=1)


class _StopAfterOneWait:
    """The stop event of Flower's heartbeat sender: records the wait, then stops it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return bool(self.waits)

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_heartbeats_are_announced_and_sent_at_the_site_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: Flower's own modules, restored after the test
    from flwr.supercore import heartbeat
    from flwr.supernode import fleet_http_connection

    for module in (heartbeat, fleet_http_connection):
        assert module.HEARTBEAT_DEFAULT_INTERVAL == supernode.FLOWER_HEARTBEAT_S
        monkeypatch.setattr(module, "HEARTBEAT_DEFAULT_INTERVAL", module.HEARTBEAT_DEFAULT_INTERVAL)
    beats: list[bool] = []
    sender = heartbeat.HeartbeatSender(lambda: beats.append(True) or True)
    stop = _StopAfterOneWait()
    sender._stop_event = stop  # type: ignore[assignment]

    # Execute
    patched = supernode.set_heartbeat_interval(12.0)
    sender._run()

    # Assert: the SuperNode announces 12 s, and waits (12 - 5 s call timeout) x 0.7..0.9
    assert patched is True
    assert fleet_http_connection.HEARTBEAT_DEFAULT_INTERVAL == 12.0
    assert beats == [True]
    assert 0.7 * 7 <= stop.waits[0] <= 0.9 * 7


@pytest.mark.parametrize("seconds", [5.0, 3600.0])
def test_a_heartbeat_interval_the_server_refuses_is_refused_here(
    tmp_path: Path, site_kit: SiteKit, seconds: float
) -> None:
    with pytest.raises(ConfigError, match="--heartbeat-interval must be 10 to 1800 seconds"):
        supernode_command(site_kit, tmp_path, "cpu", 9200, {}, heartbeat_interval=seconds)
