"""Flower's SuperNode, with its idle wait and its heartbeat interval set by the site.

Flower's SuperNode asks the server for a message, and when there is none waits 3 s (a
constant in `flwr.supernode.start_client_internal`) before asking again. A SecAgg+ round
is five messages per site, so those waits add about 15 s to every round. The site daemon
starts the SuperNode through this module, which replaces that one wait by
`--poll-interval` seconds; anything else is Flower's `flower-supernode`, unchanged. If a
Flower release no longer has the wait where it is expected, the SuperNode runs with
Flower's own and says so.

`--heartbeat-interval` sets the interval the SuperNode announces to the server and
sends its heartbeats at (Flower: 30 s, a constant). The server counts a site offline two
intervals after its last heartbeat: from then on it answers the site's pending messages
with "node unavailable" instead of letting the round wait, and it lets a restarted site
in again (until then it refuses the site's key as still connected).
"""

from __future__ import annotations

import inspect
import logging
import sys
import time
from types import ModuleType
from typing import Any

__all__ = [
    "FLOWER_HEARTBEAT_S",
    "FLOWER_IDLE_WAIT_S",
    "PollClock",
    "main",
    "set_heartbeat_interval",
    "set_poll_interval",
]

log = logging.getLogger("medfleet.site.daemon")

FLOWER_IDLE_WAIT_S = 3  # what Flower 1.41/1.42 sleep between empty pulls
_EXPECTED = f"time.sleep({FLOWER_IDLE_WAIT_S})"
FLOWER_HEARTBEAT_S = 30.0  # Flower's HEARTBEAT_DEFAULT_INTERVAL
# Where the SuperNode reads the interval: what it announces, and its sender's period.
_HEARTBEAT_MODULES = ("flwr.supernode.fleet_http_connection", "flwr.supercore.heartbeat")


class PollClock:
    """The `time` module as the SuperNode's loop sees it: its idle wait is `interval`."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def sleep(self, seconds: float) -> None:
        time.sleep(self.interval if seconds == FLOWER_IDLE_WAIT_S else seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def set_poll_interval(module: ModuleType, interval: float) -> bool:
    """Make `module` (Flower's SuperNode loop) wait `interval` s when idle; False if unsure."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return False
    if source.count(_EXPECTED) != 1 or getattr(module, "time", None) is not time:
        return False
    module.time = PollClock(interval)  # type: ignore[attr-defined]
    return True


def set_heartbeat_interval(interval: float) -> bool:
    """Make this process's SuperNode announce and send heartbeats every `interval` s.

    False (nothing changed) when a Flower release no longer reads Flower's constant in
    the modules where 1.41/1.42 read it.
    """
    import importlib

    modules = [importlib.import_module(name) for name in _HEARTBEAT_MODULES]
    if not all(
        getattr(module, "HEARTBEAT_DEFAULT_INTERVAL", None) is not None for module in modules
    ):
        return False
    for module in modules:
        module.HEARTBEAT_DEFAULT_INTERVAL = interval  # type: ignore[attr-defined]
    return True


def main(argv: list[str] | None = None) -> None:
    """`python -m client.supernode [--poll-interval S] [--heartbeat-interval S] ARGS...`.

    ARGS are `flower-supernode`'s own.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    interval, heartbeat = float(FLOWER_IDLE_WAIT_S), FLOWER_HEARTBEAT_S
    while args[:1] in (["--poll-interval"], ["--heartbeat-interval"]):
        if args[0] == "--poll-interval":
            interval = float(args[1])
        else:
            heartbeat = float(args[1])
        args = args[2:]
    from flwr.supernode import start_client_internal
    from flwr.supernode.cli.flower_supernode import flower_supernode

    from shared.object_pull import quicker_object_pulls

    if interval != FLOWER_IDLE_WAIT_S and not set_poll_interval(start_client_internal, interval):
        logging.basicConfig(level=logging.INFO)
        log.warning("this Flower release polls differently; --poll-interval has no effect")
    if heartbeat != FLOWER_HEARTBEAT_S and not set_heartbeat_interval(heartbeat):
        logging.basicConfig(level=logging.INFO)
        log.warning("this Flower release sends heartbeats differently: --heartbeat-interval "
                    "has no effect")  # fmt: skip
    if not quicker_object_pulls():
        log.debug("this Flower release pulls objects differently: its own retry waits")
    sys.argv = ["flower-supernode", *args]
    flower_supernode()


if __name__ == "__main__":
    main()
