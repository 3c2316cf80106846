"""Flower's simulation engine, picking up the server's messages for the sites sooner.

The engine's feeder thread (`add_messages_to_queue` in `flwr.server.superlink.fleet.vce`)
looks for new messages to the virtual sites, then waits 0.1 s on its stop event before it
looks again. Every exchange of a round (the training request, the evaluation request)
waits up to that long before any site starts, about a tenth of a short round. Here the
feeder is handed its stop event behind a wrapper whose waits last at most `interval`
seconds; the feeder itself, and everything else in the engine, is Flower's, unchanged.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["PICKUP_INTERVAL_S", "ShortWaits", "quicker_pickup"]

PICKUP_INTERVAL_S = 0.01
_FEEDER = "add_messages_to_queue"


class ShortWaits:
    """A `threading.Event` whose `wait` returns after at most `interval` seconds."""

    def __init__(self, event: threading.Event, interval: float) -> None:
        self._event = event
        self._interval = interval

    def wait(self, timeout: float | None = None) -> bool:
        bound = self._interval if timeout is None else min(timeout, self._interval)
        return self._event.wait(bound)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._event, name)


def quicker_pickup(interval: float = PICKUP_INTERVAL_S) -> bool:
    """Make the engine's feeder look for messages every `interval` s; False if unsure.

    Idempotent. Leaves Flower as it is (and returns False) when the feeder is not the
    function with a trailing ``f_stop`` event that Flower 1.41/1.42 have.
    """
    from flwr.server.superlink.fleet.vce import vce_api

    feeder: Callable[..., None] | None = getattr(vce_api, _FEEDER, None)
    if feeder is None:
        return False
    if getattr(feeder, "medfleet_quicker", False):
        return True
    if list(inspect.signature(feeder).parameters)[-1:] != ["f_stop"]:
        return False

    @functools.wraps(feeder)
    def quicker(*args: Any) -> None:
        *rest, f_stop = args
        feeder(*rest, ShortWaits(f_stop, interval))

    quicker.medfleet_quicker = True  # type: ignore[attr-defined]
    setattr(vce_api, _FEEDER, quicker)
    return True
