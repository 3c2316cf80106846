"""Flower's SuperNode, with the idle wait between its polls of the server set by the site.

Flower's SuperNode asks the server for a message, and when there is none waits 3 s (a
constant in `flwr.supernode.start_client_internal`) before asking again. A SecAgg+ round
is five messages per site, so those waits add about 15 s to every round. The site daemon
starts the SuperNode through this module, which replaces that one wait by
`--poll-interval` seconds; anything else is Flower's `flower-supernode`, unchanged. If a
Flower release no longer has the wait where it is expected, the SuperNode runs with
Flower's own and says so.
"""

from __future__ import annotations

import inspect
import logging
import sys
import time
from types import ModuleType
from typing import Any

__all__ = ["FLOWER_IDLE_WAIT_S", "PollClock", "main", "set_poll_interval"]

log = logging.getLogger("medfleet.site.daemon")

FLOWER_IDLE_WAIT_S = 3  # what Flower 1.41/1.42 sleep between empty pulls
_EXPECTED = f"time.sleep({FLOWER_IDLE_WAIT_S})"


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


def main(argv: list[str] | None = None) -> None:
    """`python -m client.supernode --poll-interval S FLOWER-SUPERNODE-ARGS...`."""
    args = list(sys.argv[1:] if argv is None else argv)
    interval = float(FLOWER_IDLE_WAIT_S)
    if args[:1] == ["--poll-interval"]:
        interval = float(args[1])
        args = args[2:]
    from flwr.supernode import start_client_internal
    from flwr.supernode.cli.flower_supernode import flower_supernode

    from shared.object_pull import quicker_object_pulls

    if interval != FLOWER_IDLE_WAIT_S and not set_poll_interval(start_client_internal, interval):
        logging.basicConfig(level=logging.INFO)
        log.warning("this Flower release polls differently; --poll-interval has no effect")
    if not quicker_object_pulls():
        log.debug("this Flower release pulls objects differently: its own retry waits")
    sys.argv = ["flower-supernode", *args]
    flower_supernode()


if __name__ == "__main__":
    main()
