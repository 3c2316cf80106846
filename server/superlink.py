"""Flower's SuperLink, waiting longer for a locked state database before failing a request.

Flower 1.42 keeps the SuperLink's state in SQLite and sets `busy_timeout` to 5 s
(`flwr.supercore.constant.SQLITE_PRAGMAS`): a request that cannot take the database's
lock within 5 s fails with HTTP 500 ("database is locked"). On a loaded server (seen in
the suite at load 15-20, where the SuperLink shares two cores with fleets and training)
that failed a site's pull and a coordinator's log stream mid-run. `server start` runs the
SuperLink through this module, which raises the wait to `BUSY_TIMEOUT_MS`; anything else
is Flower's `flower-superlink`, unchanged. If a Flower release sets its pragmas elsewhere,
the SuperLink runs with Flower's own and says so.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["BUSY_TIMEOUT_MS", "longer_busy_timeout", "main"]

log = logging.getLogger("medfleet.server")

#: How long a request waits for the state database's lock (Flower: 5000 ms). Well below
#: the proxy's and the clients' request timeouts (60 s, 30 s).
BUSY_TIMEOUT_MS = 20_000


def longer_busy_timeout(milliseconds: int = BUSY_TIMEOUT_MS) -> bool:
    """Make the SuperLink's SQLite connections in this process wait `milliseconds` for a lock.

    False (nothing changed) when Flower no longer reads its pragmas where 1.41/1.42 do.
    """
    try:
        from flwr.supercore import sql_mixin
    except ImportError:
        return False
    pragmas = getattr(sql_mixin, "SQLITE_PRAGMAS", None)
    if not isinstance(pragmas, tuple) or "busy_timeout" not in dict(pragmas):
        return False
    sql_mixin.SQLITE_PRAGMAS = tuple(  # type: ignore[assignment]
        (name, str(milliseconds) if name == "busy_timeout" else value) for name, value in pragmas
    )
    return True


def main() -> None:
    """`python -m server.superlink ARGS`: ARGS are `flower-superlink`'s own."""
    from flwr.superlink.cli import flower_superlink

    if not longer_busy_timeout():
        logging.basicConfig(level=logging.INFO)
        log.warning("this Flower release sets its database pragmas differently: the "
                    "SuperLink waits Flower's 5 s for a locked state database")  # fmt: skip
    sys.argv = ["flower-superlink", *sys.argv[1:]]
    flower_superlink()


if __name__ == "__main__":
    main()
