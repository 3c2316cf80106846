"""Flower's SuperNode, with its idle wait and its heartbeat interval set by the site.

Flower's SuperNode asks the server for a message, and when there is none waits 3 s (a
constant in `flwr.supernode.start_client_internal`) before asking again. A SecAgg+ round
is five messages per site, so those waits add about 15 s to every round. The site daemon
starts the SuperNode through this module, which replaces that one wait by
`--poll-interval` seconds, backing off to `--idle-poll-interval` seconds while no message
comes (`PollClock`); anything else is Flower's `flower-supernode`, unchanged. If a Flower
release no longer has the wait where it is expected, the SuperNode runs with Flower's own
and says so.

`--heartbeat-interval` sets the interval the SuperNode announces to the server and
sends its heartbeats at (Flower: 30 s, a constant). The server counts a site offline two
intervals after its last heartbeat: from then on it answers the site's pending messages
with "node unavailable" instead of letting the round wait, and it lets a restarted site
in again (until then it refuses the site's key as still connected).

A server error (HTTP 500, e.g. the SuperLink's state database locked for a moment under
load) is retried like a 502-504, with Flower's backoff (`retry_server_errors`): Flower
1.42 gives up on it, which ends the SuperNode's connection, and its heartbeat thread dies
on the same error. Should Flower's connection loop end anyway, the process exits (code
`CONNECTION_ENDED`) instead of lingering without a connection: the site daemon then
starts it again. Found in the suite: a 500 on one pull left a site's SuperNode alive and
silent, and every later round waited for it until its timeout.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
import traceback
from types import ModuleType
from typing import Any

__all__ = [
    "CONNECTION_ENDED",
    "FLOWER_HEARTBEAT_S",
    "FLOWER_IDLE_WAIT_S",
    "PollClock",
    "main",
    "retry_server_errors",
    "set_heartbeat_interval",
    "set_poll_interval",
]

log = logging.getLogger("medfleet.site.daemon")

FLOWER_IDLE_WAIT_S = 3  # what Flower 1.41/1.42 sleep between empty pulls
_EXPECTED = f"time.sleep({FLOWER_IDLE_WAIT_S})"
_PULL = "_pull_and_store_message"  # the loop's pull: returns the message's run, else None
FLOWER_HEARTBEAT_S = 30.0  # Flower's HEARTBEAT_DEFAULT_INTERVAL
# Where the SuperNode reads the interval: what it announces, and its sender's period.
_HEARTBEAT_MODULES = ("flwr.supernode.fleet_http_connection", "flwr.supercore.heartbeat")
#: Exit code of a SuperNode whose connection loop ended without a signal (a server error
#: Flower does not retry): the site daemon logs it and starts the SuperNode again.
CONNECTION_ENDED = 75


class PollClock:
    """The `time` module as the SuperNode's loop sees it: its idle wait is `interval`.

    Once no message has come for `QUIET_S`, each further empty pull doubles the wait, up
    to `idle_interval`; the next message brings it back to `interval` (`saw_message`). A
    site at rest for weeks then asks every `idle_interval` seconds, not every second: each
    request costs the SuperLink some 10 ms of CPU, which a hundred sites would turn into a
    busy core.
    """

    QUIET_S = 30.0

    def __init__(self, interval: float, idle_interval: float | None = None) -> None:
        self.interval = interval
        self.idle_interval = max(interval, interval if idle_interval is None else idle_interval)
        self.wait = interval
        self._last_message = time.monotonic()

    def saw_message(self) -> None:
        self._last_message = time.monotonic()
        self.wait = self.interval

    def idle_wait(self) -> float:
        """The wait after an empty pull (and the backoff's next step)."""
        if time.monotonic() - self._last_message >= self.QUIET_S:
            self.wait = min(self.wait * 2, self.idle_interval)
        return self.wait

    def sleep(self, seconds: float) -> None:
        time.sleep(self.idle_wait() if seconds == FLOWER_IDLE_WAIT_S else seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def set_poll_interval(
    module: ModuleType, interval: float, idle_interval: float | None = None
) -> bool:
    """Make `module` (Flower's SuperNode loop) wait `interval` s when idle; False if unsure.

    With `idle_interval` the wait backs off to it while no message comes (`PollClock`).
    """
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return False
    if source.count(_EXPECTED) != 1 or getattr(module, "time", None) is not time:
        return False
    pull = getattr(module, _PULL, None)
    if not callable(pull):
        return False
    clock = PollClock(interval, idle_interval)

    def pull_and_note(*args: Any, **kwargs: Any) -> Any:
        run_id = pull(*args, **kwargs)
        if run_id is not None:  # a message came
            clock.saw_message()
        return run_id

    setattr(module, _PULL, pull_and_note)
    module.time = clock  # type: ignore[attr-defined]
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


def retry_server_errors() -> bool:
    """Make this process's SuperNode retry an HTTP 500 from the server, not give up.

    Flower's HTTP retry treats 502, 503 and 504 as passing and anything else as final
    (`shared.http_retry`); its heartbeat sender treats 502-504 as a failed beat to retry
    and lets any other error end its thread. Here 500 joins the passing errors of both,
    so a moment's server error costs a retry instead of the site's connection. False
    (nothing changed) when a Flower release no longer has these where 1.41/1.42 have them.
    """
    from shared import http_retry

    try:
        import httpx
        from flwr.supernode import fleet_http_connection
    except ImportError:
        return False
    sender = getattr(fleet_http_connection, "HeartbeatSender", None)
    if not isinstance(sender, type) or not http_retry.retry_server_errors():
        return False
    if not getattr(sender, "_medfleet_retries_server_errors", False):

        class RetryingHeartbeatSender(sender):  # type: ignore[misc, valid-type]
            """Flower's sender, whose beat reports a server error as a failed beat."""

            _medfleet_retries_server_errors = True

            def __init__(self, heartbeat_fn: Any, *args: Any, **kwargs: Any) -> None:
                def beat() -> bool:
                    try:
                        return bool(heartbeat_fn())
                    except httpx.HTTPStatusError as err:
                        if err.response.status_code >= 500:
                            log.warning("heartbeat: server error %s, retrying",
                                        err.response.status_code)  # fmt: skip
                            return False
                        raise

                super().__init__(beat, *args, **kwargs)

        fleet_http_connection.HeartbeatSender = RetryingHeartbeatSender  # type: ignore[misc]
    return True


def main(argv: list[str] | None = None) -> None:
    """`python -m client.supernode [--poll-interval S] [--idle-poll-interval S]
    [--heartbeat-interval S] ARGS...`.

    ARGS are `flower-supernode`'s own.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    interval, heartbeat = float(FLOWER_IDLE_WAIT_S), FLOWER_HEARTBEAT_S
    idle: float | None = None
    while args[:1] in (["--poll-interval"], ["--idle-poll-interval"], ["--heartbeat-interval"]):
        if args[0] == "--poll-interval":
            interval = float(args[1])
        elif args[0] == "--idle-poll-interval":
            idle = float(args[1])
        else:
            heartbeat = float(args[1])
        args = args[2:]
    from flwr.supernode import start_client_internal
    from flwr.supernode.cli.flower_supernode import flower_supernode

    from shared.object_pull import quicker_object_pulls

    changed = interval != FLOWER_IDLE_WAIT_S or idle is not None
    if changed and not set_poll_interval(start_client_internal, interval, idle):
        logging.basicConfig(level=logging.INFO)
        log.warning("this Flower release polls differently; --poll-interval has no effect")
    if heartbeat != FLOWER_HEARTBEAT_S and not set_heartbeat_interval(heartbeat):
        logging.basicConfig(level=logging.INFO)
        log.warning("this Flower release sends heartbeats differently: --heartbeat-interval "
                    "has no effect")  # fmt: skip
    if not quicker_object_pulls():
        log.debug("this Flower release pulls objects differently: its own retry waits")
    if not retry_server_errors():
        logging.basicConfig(level=logging.INFO)
        log.warning("this Flower release retries differently: a server error (HTTP 500) "
                    "may end this SuperNode's connection; the site daemon restarts it")  # fmt: skip
    sys.argv = ["flower-supernode", *args]
    # Flower's loop ends by itself only on a signal (which exits the process) or on an
    # error: then its runtime server's thread would keep this process alive, unconnected.
    try:
        flower_supernode()
        ended = "the SuperNode's connection to the server ended (the error is above)"
    except Exception as err:
        traceback.print_exc()
        ended = f"the SuperNode failed ({type(err).__name__}: {err})"
    logging.basicConfig(level=logging.INFO)
    log.error("%s: exiting so that the site daemon starts it again", ended)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(CONNECTION_ENDED)


if __name__ == "__main__":
    main()
