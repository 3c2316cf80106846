"""The round loop's bound on each exchange with the sites."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any, cast

from flwr.app import Message
from flwr.serverapp.grid import Grid

from server.workflow import _BoundedGrid


class _Reply:
    """The parts of a reply Message the loop reads."""

    def __init__(self, to: str, error: str | None = None) -> None:
        self.metadata = SimpleNamespace(reply_to_message_id=to)
        self.error = SimpleNamespace(reason=error)

    def has_error(self) -> bool:
        return self.error.reason is not None


class _FakeGrid:
    """Stands in for Flower's Grid on a fake clock: a site replies `delays[i]` s after push."""

    def __init__(self, delays: list[float | None]) -> None:
        self.now = 0.0
        self.delays = delays
        self.pulls: list[float] = []
        self.pushed_at = 0.0
        self.run = "run-7"
        self.refusals: dict[str, str] = {}

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        self.pushed_at = self.now
        self.pulls = []
        return [f"m{i}" for i in range(len(self.delays))]

    def pull_messages(self, ids: Iterable[str]) -> list[Any]:
        self.pulls.append(self.now - self.pushed_at)
        due = [
            f"m{i}"
            for i, delay in enumerate(self.delays)
            if delay is not None and self.now - self.pushed_at >= delay
        ]
        return [_Reply(m, self.refusals.get(m)) for m in due if m in set(ids)]


def _bounded(inner: _FakeGrid, seconds: float) -> _BoundedGrid:
    return _BoundedGrid(cast(Grid, inner), seconds, 0.25, lambda: inner.now, inner.sleep)


def test_replies_are_collected_within_one_poll_of_their_arrival() -> None:
    # Prepare: three sites answer after 1.1, 2.0 and 4.3 s
    inner = _FakeGrid([1.1, 2.0, 4.3])
    # Execute
    replies = list(_bounded(inner, 40.0).send_and_receive([None, None, None]))  # type: ignore[list-item]
    # Assert: every reply, each once, and the exchange ends within 0.25 s of the last
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["m0", "m1", "m2"]
    assert 4.3 <= inner.pulls[-1] < 4.3 + 0.25


def test_every_exchange_gets_the_full_bound_however_long_the_ones_before_took() -> None:
    # Prepare: one site never answers
    inner = _FakeGrid([0.5, None])
    grid = _bounded(inner, 3.0)
    # Execute: four SecAgg+ stages in a row, longer together than the bound
    results = []
    for _ in range(4):
        results.append([r.metadata.reply_to_message_id for r in grid.send_and_receive([])])
        # Assert: each stage waited exactly its own 3 s, then returned what came
        assert inner.pulls[-1] == 3.0
    assert results == [["m0"]] * 4


def test_a_shorter_timeout_asked_for_wins_and_other_calls_pass_through() -> None:
    inner = _FakeGrid([None])
    grid = _bounded(inner, 40.0)
    grid.send_and_receive([], timeout=5.0)
    assert inner.pulls[-1] == 5.0
    grid.send_and_receive([], timeout=100.0)
    assert inner.pulls[-1] == 40.0
    assert grid.run == "run-7"


def test_sampling_waits_at_most_the_timeout_then_names_the_counts() -> None:
    # Prepare
    import time

    import pytest

    from server.workflow import BoundedClientManager
    from shared.errors import RoundError

    manager = BoundedClientManager(timeout=1)

    # Execute / Assert: Flower's own manager would wait a day
    started = time.monotonic()
    with pytest.raises(RoundError, match="only 0 sites are connected, the run needs min-sites=3"):
        manager.sample(3)
    assert time.monotonic() - started < 5


def test_error_replies_are_kept_for_the_rounds_error_message() -> None:
    # Prepare: of three sites, two refuse the app
    from server.workflow import _site_errors

    inner = _FakeGrid([0.5, 0.5, 0.7])
    refusal = "site site-b refused app 1f2e: not approved there"
    inner.refusals = {"m1": refusal, "m2": refusal.replace("site-b", "site-c")}
    grid = _bounded(inner, 10.0)

    # Execute
    grid.send_and_receive([])

    # Assert: both reasons, once each, in the text the failed round reports
    assert grid.errors == [refusal, refusal.replace("site-b", "site-c")]
    assert _site_errors(grid.errors + [refusal]) == (
        f"; sites replied with errors: {refusal} | {refusal.replace('site-b', 'site-c')}"
    )
    assert _site_errors([]) == ""


def test_replies_are_polled_often_from_memory_and_every_quarter_second_over_http() -> None:
    # Prepare
    from flwr.superlink.grid.inmemory_grid import InMemoryGrid

    from server.workflow import IN_MEMORY_POLL_SECONDS, POLL_SECONDS, poll_seconds

    in_memory = InMemoryGrid.__new__(InMemoryGrid)  # no LinkState needed to ask its kind
    # Execute / Assert
    assert poll_seconds(cast(Grid, in_memory)) == IN_MEMORY_POLL_SECONDS == 0.01
    assert poll_seconds(cast(Grid, _FakeGrid([]))) == POLL_SECONDS == 0.25
