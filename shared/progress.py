"""Progress bars (rich) for long work at a site; silent when stderr is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from shared.log_context import current_context

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["ENV", "progress", "progress_enabled", "track"]

T = TypeVar("T")

#: ``auto`` (a bar when stderr is a terminal), ``on`` or ``off``.
ENV = "MEDFLEET_PROGRESS"

_live: list[Progress] = []  # the one rich Progress on screen, shared by nested bars


def _ignore(n: int = 1) -> None:
    """`advance` when no bar is drawn."""


def progress_enabled() -> bool:
    """Bars are drawn when stderr is a terminal (``MEDFLEET_PROGRESS=on|off`` overrides)."""
    mode = os.environ.get(ENV, "auto").lower()
    if mode in ("off", "0", "false", "no"):
        return False
    if mode in ("on", "1", "true", "yes"):
        return True
    return sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A bar for `total` steps; yields ``advance(n=1)``. A no-op when bars are off.

    The current log context (site and round) leads the description. Bars opened inside
    another share its display (rich draws one live display at a time) and disappear
    when done, so logs and tables printed afterwards stay readable.
    """
    if not progress_enabled():
        yield _ignore
        return
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    context = current_context()
    # Escaped: rich would take "[site-1 round 3]" for a style tag and drop it.
    label = escape(f"[{context}] {description}" if context else description)
    owner = not _live
    if owner:
        bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_console(),
            transient=True,
        )
        bars.start()
        _live.append(bars)
    bars = _live[0]
    task = bars.add_task(label, total=total)

    def advance(n: int = 1) -> None:
        bars.advance(task, n)

    try:
        yield advance
    finally:
        bars.remove_task(task)
        if owner:
            bars.stop()
            _live.clear()


def _console() -> Console:
    """Where bars go: stderr, beside the logs (tests point it elsewhere)."""
    from rich.console import Console

    return Console(stderr=True)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield `items`, advancing a bar (`progress`) by one per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress(description, total) as advance:
        for item in items:
            yield item
            advance(1)
