"""Per-process memo of prepared site data, so later rounds reuse decoded images."""

from __future__ import annotations

from pathlib import Path

from shared.data.listing import folder_signature
from shared.tasks.base import SiteData, Task

__all__ = ["load_site_cached"]

_CACHE: dict[tuple[object, ...], SiteData] = {}
_MAX_ENTRIES = 8


def load_site_cached(task: Task, data_dir: Path, cache_dir: Path | None) -> SiteData:
    """Return `task.load_site(data_dir)`, reusing the result while the folder is unchanged.

    Flower builds a new client object every round; without this memo each round would
    re-index headers and re-decode every image.
    """
    folder = str(data_dir.resolve())
    options = tuple(sorted((k, str(v)) for k, v in task.config.options.items()))
    key = (type(task).__name__, options, folder, folder_signature(data_dir))
    if key not in _CACHE:
        # Drop stale entries of this folder; a simulation actor may serve a few sites.
        for old in [k for k in _CACHE if k[2] == folder or len(_CACHE) >= _MAX_ENTRIES]:
            del _CACHE[old]
        _CACHE[key] = task.load_site(data_dir, cache_dir)
    return _CACHE[key]
