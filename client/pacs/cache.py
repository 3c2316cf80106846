"""The site's private PACS cache: complete studies only, a ledger, and a staging folder.

Layout (the cache folder is the site's data folder; hidden names are never indexed)::

    CACHE/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm   complete studies
    CACHE/.medfleet-pacs/ledger.json                     studies synced, with counts
    CACHE/.medfleet-pacs/sync.lock                       held by the running sync
    CACHE/.medfleet-pacs/staging/<StudyUID>/...          studies being retrieved

Every file is written under a hidden temporary name in its own folder and renamed into
place (`os.replace`), so no reader ever sees half a file; a study moves from staging into
the cache in one rename once all of its instances are there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from shared.errors import ConfigError, DataError

__all__ = ["PacsCache", "atomic_write", "instance_path"]

_STATE = ".medfleet-pacs"
# A UID is digits and dots (PS3.5 9.1); anything else from the network must never
# become part of a path ("../", "/").
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def atomic_write(path: Path, data: bytes) -> Path:
    """Write `data` to `path` through a hidden temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def instance_path(root: Path, study: str, series: str, sop: str) -> Path:
    """``root/<study>/<series>/<sop>.dcm``; refuses UIDs that are not digits and dots."""
    for uid in (study, series, sop):
        if len(uid) > 64 or not _UID.fullmatch(uid):
            raise DataError("an instance's UID is not a valid DICOM UID; the instance is refused")
    return root / study / series / f"{sop}.dcm"


class PacsCache:
    """One site's cache folder (see the module docstring for its layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.state = self.root / _STATE
        self.staging = self.state / "staging"
        self.ledger_path = self.state / "ledger.json"

    @contextlib.contextmanager
    def syncing(self) -> Iterator[None]:
        """Hold the cache for one sync (an exclusive `flock`, dropped even on SIGKILL).

        Raises
        ------
        ConfigError
            When another sync holds it: two would retrieve the same studies and race on
            the ledger.
        """
        self.state.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state / "sync.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                "another `medfleet site sync` is filling this cache-dir; wait for it to end"
            ) from None
        try:
            yield
        finally:
            os.close(fd)

    def ledger(self) -> dict[str, dict[str, object]]:
        """Study UID -> {"instances": n, "synced": ISO time, "pacs": name} of complete studies."""
        if not self.ledger_path.is_file():
            return {}
        return dict(json.loads(self.ledger_path.read_text())["studies"])

    def stage(self, study: str, series: str, sop: str, data: bytes) -> Path:
        """Write one retrieved instance (its file bytes, with meta) into the study's staging."""
        return atomic_write(instance_path(self.staging, study, series, sop), data)

    def staged(self, study: str) -> int:
        """How many distinct instances of `study` are in staging (a resumed study keeps them)."""
        return _count(self.staging / study)

    def partial(self) -> list[str]:
        """Study UIDs left in staging (interrupted retrieves)."""
        if not self.staging.is_dir():
            return []
        return sorted(p.name for p in self.staging.iterdir() if p.is_dir())

    def commit(self, study: str, expected: int, pacs: str) -> bool:
        """Move `study` into the cache if all `expected` instances are staged; else keep it.

        A study already in the cache (pushed by `site listen`) is replaced as a whole: it
        is renamed aside, the staged one renamed in, the old one deleted, so the cache
        holds the old study, then none, then the new one, never a mix.
        """
        if self.staged(study) < expected:
            return False
        target = self.root / study
        if target.exists():
            aside = self.state / "replaced" / study
            shutil.rmtree(aside, ignore_errors=True)
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, aside)
            os.replace(self.staging / study, target)
            shutil.rmtree(aside)
        else:
            os.replace(self.staging / study, target)
        self._record({study: expected}, pacs)
        return True

    def _record(self, studies: Mapping[str, int], pacs: str) -> None:
        entries = self.ledger()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for uid, count in studies.items():
            entries[uid] = {"instances": count, "synced": now, "pacs": pacs}
        text = json.dumps({"version": 1, "studies": entries}, indent=1, sort_keys=True)
        atomic_write(self.ledger_path, text.encode() + b"\n")

    def complete_studies(self) -> dict[str, int]:
        """Study folders in the cache and their instance counts (what the index sees)."""
        if not self.root.is_dir():
            return {}
        folders = (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return {p.name: _count(p) for p in sorted(folders)}


def _count(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob("*.dcm") if not p.name.startswith("."))
