"""A server error (HTTP 500) costs the site's SuperNode a retry, never its connection.

Seen in the suite: under load the SuperLink's state database was locked for 6 s, one
pull got a 500, Flower 1.42's SuperNode gave up its connection on it and then stayed
alive without one (its runtime server's thread), so the site missed every later round.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from flwr.supercore.heartbeat import HeartbeatFailure
from flwr.supercore.retry import http_retry
from flwr.supernode import fleet_http_connection

from client import supernode


def _failing(codes: list[int]) -> tuple[Callable[[], str], list[int]]:
    """A call that fails with each of `codes` in turn, then answers "ok"; and its calls."""
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(codes):
            request = httpx.Request("POST", "https://server/v1/fleet/pull-messages")
            response = httpx.Response(codes[len(calls) - 1], request=request)
            raise httpx.HTTPStatusError("server error", request=request, response=response)
        return "ok"

    return call, calls


@pytest.fixture
def patched() -> Iterator[None]:
    codes, sender = http_retry._RETRYABLE_STATUS_CODES, fleet_http_connection.HeartbeatSender
    try:
        assert supernode.retry_server_errors() is True
        yield
    finally:
        http_retry._RETRYABLE_STATUS_CODES = codes
        fleet_http_connection.HeartbeatSender = sender  # type: ignore[misc]


def _invoker() -> object:
    invoker = http_retry.make_simple_http_retry_invoker()
    invoker.wait_gen_factory = lambda: (0.0 for _ in range(10))  # no waits in the test
    return invoker


def test_flower_alone_retries_only_bad_gateway_and_unavailable() -> None:
    # Prepare: a fresh process (a simulation in this one may have patched it already)
    probe = (
        "from flwr.supercore.retry import http_retry as h\n"
        "print(sorted(map(int, h._RETRYABLE_STATUS_CODES)))"
    )
    # Execute
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    # Assert: Flower's own rule, the reason for the patch
    assert done.stdout.strip() == "[502, 503, 504]", done.stderr[-2000:]


def test_a_status_outside_the_passing_ones_is_final() -> None:
    # Prepare
    call, calls = _failing([404])
    # Execute / Assert
    with pytest.raises(httpx.HTTPStatusError):
        _invoker().invoke(call)  # type: ignore[attr-defined]
    assert len(calls) == 1


def test_a_server_error_is_retried_like_a_bad_gateway(patched: None) -> None:
    # Prepare
    call, calls = _failing([500, 502, 500])
    # Execute
    answer = _invoker().invoke(call)  # type: ignore[attr-defined]
    # Assert: three failures, then the answer
    assert (answer, len(calls)) == ("ok", 4)


def test_a_refusal_is_still_final(patched: None) -> None:
    # Prepare: 404 (e.g. an unknown run) is not passing, retrying cannot fix it
    call, calls = _failing([404])
    # Execute / Assert
    with pytest.raises(httpx.HTTPStatusError):
        _invoker().invoke(call)  # type: ignore[attr-defined]
    assert len(calls) == 1


def test_a_heartbeat_server_error_is_a_failed_beat_not_a_dead_thread(patched: None) -> None:
    # Prepare: the sender the SuperNode's connection builds (after the patch)
    beat, calls = _failing([500])
    sender = fleet_http_connection.HeartbeatSender(lambda: beat() == "ok")
    # Execute / Assert: the first beat fails and is retried by the sender, the next one
    # succeeds; Flower's own sender would let the 500 end its thread
    with pytest.raises(HeartbeatFailure):
        sender._heartbeat()
    sender._heartbeat()
    assert len(calls) == 2
    refused, _ = _failing([401])
    with pytest.raises(httpx.HTTPStatusError):
        fleet_http_connection.HeartbeatSender(lambda: refused() == "ok")._heartbeat()


@pytest.mark.parametrize("how", ["ended", "failed"])
def test_the_supernode_exits_when_flowers_loop_ends(how: str) -> None:
    # Prepare: Flower's SuperNode replaced by one whose loop ends while a non-daemon
    # thread (its runtime server's) still runs, as after an error it does not retry
    script = (
        "import importlib, sys, threading, time\n"
        "from client import supernode\n"
        "cli = importlib.import_module('flwr.supernode.cli.flower_supernode')\n"
        "def ended():\n"
        "    threading.Thread(target=time.sleep, args=(120,)).start()\n"
        "    if sys.argv[1:] == ['--fail']:\n"
        "        raise FileNotFoundError('flower-superexec')\n"
        "cli.flower_supernode = ended\n"
        "supernode.main(sys.argv[1:])\n"
    )
    # Execute
    done = subprocess.run(
        [sys.executable, "-c", script, *(["--fail"] if how == "failed" else [])],
        capture_output=True,
        text=True,
        timeout=90,
    )
    # Assert: it exits at once with the code the site daemon restarts on, saying why
    assert done.returncode == supernode.CONNECTION_ENDED, done.stderr[-2000:]
    assert "exiting so that the site daemon starts it again" in done.stderr
    last = done.stderr.strip().splitlines()[-1]  # what the daemon logs as the cause
    assert ("FileNotFoundError: flower-superexec" in last) == (how == "failed"), last
