"""`medfleet site sync`: query the PACS, retrieve the studies the cache lacks, commit whole ones."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from client.pacs.cache import PacsCache, atomic_write
from client.pacs.config import PacsSettings
from client.pacs.remote import PacsUnavailable, Remote, StudyHit, connect, matches
from shared.data.manifest import LABELS_FILE
from shared.errors import ConfigError

__all__ = ["SyncSummary", "sync_pacs"]

log = logging.getLogger("medfleet.site.pacs")

#: Called after each instance is staged: (study number from 1, instances of it so far).
InstanceHook = Callable[[int, int], None]


@dataclass
class SyncSummary:
    """What one sync did (counts only: no UID, no address)."""

    pacs: str
    found: int = 0
    already: int = 0
    retrieved: int = 0
    instances: int = 0
    incomplete: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when every study the query found is complete in the cache."""
        return not self.error and not self.incomplete


def sync_pacs(
    settings: PacsSettings,
    name: str | None = None,
    on_instance: InstanceHook | None = None,
    remote: Remote | None = None,
) -> SyncSummary:
    """Retrieve into the cache every study of the saved query it does not hold complete.

    A study counts (is moved into the cache and written to the ledger) only when the
    PACS reported the retrieve complete and as many distinct instances arrived as its
    query reported (when it reports no count: the retrieve's own word). A retrieve that
    breaks off leaves its study in staging, outside the index; the next sync retrieves
    it again into the same staging folder. Studies in the ledger are never fetched
    again, so results stored back into a study (`medfleet predict --store`) do not
    become training labels.

    Parameters
    ----------
    settings : PacsSettings
        The site's PACS file.
    name : str, optional
        Which PACS of the file (the only one when None).
    on_instance : callable, optional
        Progress hook, called after each staged instance.
    remote : Remote, optional
        The connection to use (default: `connect` to the named PACS).
    """
    config = settings.get(name)
    started = time.monotonic()
    cache = PacsCache(settings.cache_dir)
    cache.root.mkdir(parents=True, exist_ok=True)
    summary = SyncSummary(config.name)
    if settings.labels_csv is not None:
        _copy_labels(settings, cache)
    remote = remote or connect(config)
    with cache.syncing():
        _sync_studies(remote, settings, cache, summary, on_instance)
    summary.seconds = time.monotonic() - started
    return summary


def _sync_studies(
    remote: Remote,
    settings: PacsSettings,
    cache: PacsCache,
    summary: SyncSummary,
    on_instance: InstanceHook | None,
) -> None:
    """Query, then retrieve and commit each study the ledger lacks, filling `summary`."""
    try:
        hits = _query(remote, settings, summary.pacs)
        done = cache.ledger()
        summary.found = len(hits)
        todo = [hit for hit in hits if hit.uid not in done]
        summary.already = summary.found - len(todo)
        for number, hit in enumerate(todo, start=1):
            log.info("retrieving study %d of %d (%d instances)", number, len(todo), hit.instances)
            received, complete = _retrieve(remote, cache, hit, number, on_instance)
            summary.instances += received
            expected = hit.instances or cache.staged(hit.uid)
            if complete and cache.commit(hit.uid, expected, summary.pacs):
                summary.retrieved += 1
            else:
                summary.incomplete.append(hit.uid)
    except PacsUnavailable as err:
        summary.error = str(err)
        summary.incomplete.extend(u for u in cache.partial() if u not in summary.incomplete)


def _query(remote: Remote, settings: PacsSettings, name: str | None) -> list[StudyHit]:
    """The saved query's studies, each once, checked again here (and for the body part)."""
    query = settings.get(name).query
    unique: dict[str, StudyHit] = {}
    for hit in remote.find_studies(query):
        if hit.uid and matches(hit, query):
            unique.setdefault(hit.uid, hit)
    if query.body_part:
        return [hit for hit in unique.values() if remote.has_body_part(hit.uid, query)]
    return list(unique.values())


def _retrieve(
    remote: Remote, cache: PacsCache, hit: StudyHit, number: int, hook: InstanceHook | None
) -> tuple[int, bool]:
    """Stage every instance of one study the PACS sends; how many arrived, and whether the
    PACS reported the retrieve complete."""
    received = 0

    def sink(study: str, series: str, sop: str, data: bytes) -> None:
        nonlocal received
        if study != hit.uid:  # a PACS answering with another study's instance: not ours
            log.warning("the PACS sent an instance of another study; it is ignored")
            return
        cache.stage(study, series, sop, data)
        received += 1
        if hook is not None:
            hook(number, received)

    complete = remote.retrieve(hit.uid, sink)
    return received, complete


def _copy_labels(settings: PacsSettings, cache: PacsCache) -> None:
    """Put the configured labels CSV (keyed by UID) into the cache as its labels.csv."""
    source = settings.labels_csv
    if source is None or not source.is_file():
        raise ConfigError("labels-csv of the PACS file is not a file", local=str(source))
    target = cache.root / LABELS_FILE
    if not target.is_file() or target.read_bytes() != source.read_bytes():
        atomic_write(target, source.read_bytes())
