"""The round loop's bound on each exchange with the sites."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

from flwr.app import Message
from flwr.serverapp.grid import Grid

from server.workflow import _BoundedGrid


class _SlowGrid:
    """Stands in for Flower's Grid: each exchange takes 0.2 s and notes its timeout."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []
        self.run = "run-7"

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Any]:
        self.timeouts.append(timeout)
        time.sleep(0.2)
        return list(messages)


def test_every_exchange_gets_the_full_bound_however_long_the_ones_before_took() -> None:
    # Prepare
    inner = _SlowGrid()
    grid = _BoundedGrid(cast(Grid, inner), 0.3)
    # Execute: four SecAgg+ stages in a row, longer together than the bound
    for _ in range(4):
        grid.send_and_receive([])
    # Assert
    assert inner.timeouts == [0.3, 0.3, 0.3, 0.3]


def test_a_shorter_timeout_asked_for_wins_and_other_calls_pass_through() -> None:
    inner = _SlowGrid()
    grid = _BoundedGrid(cast(Grid, inner), 40.0)
    grid.send_and_receive([], timeout=5.0)
    grid.send_and_receive([], timeout=100.0)
    assert inner.timeouts == [5.0, 40.0]
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
