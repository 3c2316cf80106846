"""Which site and round a log line is about: a context every MedFleet log record carries."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["current_context", "install", "site_round"]

_CONTEXT: ContextVar[str] = ContextVar("medfleet_log_context", default="")
_installed = False


def current_context() -> str:
    """The context of the current task, e.g. ``site-1 round 3``; empty outside one."""
    return _CONTEXT.get()


@contextmanager
def site_round(site: str, server_round: int | None = None, stage: str = "") -> Iterator[str]:
    """Within this block, MedFleet's log lines start with ``[site round N stage]``.

    Only the site's name (the one string a site sends anyway) and numbers go in: never a
    path or an identifier. Returns the context text.
    """
    install()
    parts = [site]
    if server_round is not None:
        parts.append(f"round {server_round}")
    if stage:
        parts.append(stage)
    token = _CONTEXT.set(" ".join(parts))
    try:
        yield _CONTEXT.get()
    finally:
        _CONTEXT.reset(token)


def install() -> None:
    """Prefix the records of ``medfleet.*`` loggers with the current context (once).

    A record factory rather than a handler filter: it reaches every handler a process
    has (Flower's, the CLI's, a Ray worker's) without touching their formats.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)  # type: ignore[arg-type]
        context = _CONTEXT.get()
        if context and record.name.startswith("medfleet") and isinstance(record.msg, str):
            record.msg = f"[{context.replace('%', '%%')}] {record.msg}"
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
