"""The site's approved apps: Flower FAB hashes a site admin allowed to run here."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import re
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

from shared.errors import ConfigError

__all__ = [
    "APPROVALS_NAME",
    "AppBundle",
    "ApprovalStore",
    "ApprovedApp",
    "fab_hash",
    "is_fab_hash",
    "load_app",
]

APPROVALS_NAME = "approved-apps.json"
_LOCK_NAME = "approved-apps.lock"
_HASH = re.compile(r"[0-9a-f]{64}")
_FORMAT = 1


def fab_hash(content: bytes) -> str:
    """A FAB's hash as Flower computes it (`flwr build`, `flwr run`, the SuperNode's store)."""
    return hashlib.sha256(content).hexdigest()


def is_fab_hash(text: str) -> bool:
    """True for a full FAB hash: 64 lowercase hex digits."""
    return bool(_HASH.fullmatch(text))


@dataclass(frozen=True)
class AppBundle:
    """What an admin approves: a FAB's hash and, when known, its pyproject identity."""

    hash: str
    name: str = ""
    version: str = ""
    publisher: str = ""
    files: tuple[str, ...] = ()

    @classmethod
    def from_fab(cls, content: bytes) -> AppBundle:
        """Read the name, version and file list from a FAB's bytes (no code is run)."""
        from flwr.common.config import get_fab_config

        try:
            config = get_fab_config(content)
            with zipfile.ZipFile(BytesIO(content)) as fab:
                files = tuple(sorted(n for n in fab.namelist() if not n.startswith(".info/")))
        except (zipfile.BadZipFile, KeyError, ValueError) as err:
            raise ConfigError(f"not a Flower app bundle (FAB): {err}") from None
        project = config.get("project", {})
        publisher = config.get("tool", {}).get("flwr", {}).get("app", {}).get("publisher", "")
        return cls(
            hash=fab_hash(content),
            name=str(project.get("name", "")),
            version=str(project.get("version", "")),
            publisher=str(publisher),
            files=files,
        )

    @property
    def label(self) -> str:
        """`publisher/name version`, or `(unknown app)` for a bare hash."""
        if not self.name:
            return "(unknown app)"
        owner = f"{self.publisher}/" if self.publisher else ""
        return f"{owner}{self.name} {self.version}".strip()


def load_app(app: str) -> tuple[AppBundle, str]:
    """The bundle an `approve` argument names, and a description of where it came from.

    `app` is a built FAB file (`flwr build`), a Flower app folder (built here exactly as
    `flwr run` builds it before submitting, so the hash is the run's), or a FAB hash.

    Raises
    ------
    ConfigError
        When `app` is none of these, or the folder or file is not a valid Flower app.
    """
    path = Path(app).expanduser()
    if path.is_dir():
        from flwr.cli.build import build_fab_from_disk

        try:
            content = build_fab_from_disk(path)
        except (ValueError, OSError) as err:
            raise ConfigError(f"cannot build a FAB from folder {path}: {err}") from None
        return AppBundle.from_fab(content), f"folder {path.resolve()}"
    if path.is_file():
        return AppBundle.from_fab(path.read_bytes()), f"file {path.resolve()}"
    if is_fab_hash(app.lower()):
        return AppBundle(hash=app.lower()), "hash"
    raise ConfigError(
        f"{app!r} is neither a FAB file, a Flower app folder nor a 64-digit FAB hash; "
        "pass the .fab file from `flwr build`, the app's project folder, or its hash"
    )


@dataclass(frozen=True)
class ApprovedApp:
    """One entry of the approval store."""

    hash: str
    name: str
    version: str
    publisher: str
    approved_at: str
    approved_by: str
    source: str

    @property
    def label(self) -> str:
        """`publisher/name version` as `AppBundle.label` shows it."""
        bundle = AppBundle(self.hash, self.name, self.version, self.publisher)
        return bundle.label


class ApprovalStore:
    """`STATE_DIR/approved-apps.json`: replaced atomically, changed under a `flock`.

    Readers (the ClientApp launcher, once per task) never see a half-written file: every
    change writes a temporary file in the same folder and renames it over the old one.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / APPROVALS_NAME

    def apps(self) -> dict[str, ApprovedApp]:
        """Every approved app by hash (empty when nothing was approved yet).

        Raises
        ------
        ConfigError
            When the file exists but is not a store this code wrote.
        """
        try:
            data = json.loads(self.path.read_text())
            entries = data["apps"]
            return {h: ApprovedApp(hash=h, **entry) for h, entry in entries.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(
                f"approval store {self.path} is damaged ({type(err).__name__}: {err}); "
                "remove it and approve the apps again with `medfleet site approve`"
            ) from None

    def is_approved(self, hash_: str) -> bool:
        """True when `hash_` is approved here."""
        return hash_ in self.apps()

    def approve(self, bundle: AppBundle, source: str) -> ApprovedApp:
        """Add (or refresh) `bundle`, recording when, by whom and from what."""
        entry = ApprovedApp(
            hash=bundle.hash,
            name=bundle.name,
            version=bundle.version,
            publisher=bundle.publisher,
            approved_at=datetime.now(UTC).isoformat(timespec="seconds"),
            approved_by=f"{getpass.getuser()}@{socket.gethostname()}",
            source=source,
        )
        with self._locked():
            apps = self.apps()
            apps[entry.hash] = entry
            self._write(apps)
        return entry

    def revoke(self, hash_or_prefix: str) -> ApprovedApp:
        """Remove the app whose hash is, or uniquely starts with, `hash_or_prefix`.

        Raises
        ------
        ConfigError
            When no approved hash, or more than one, matches.
        """
        key = hash_or_prefix.strip().lower()
        with self._locked():
            apps = self.apps()
            matches = [h for h in apps if h.startswith(key)] if len(key) >= 8 else []
            if key in apps:
                matches = [key]
            if len(matches) != 1:
                what = "no approved app" if not matches else f"{len(matches)} approved apps"
                raise ConfigError(
                    f"{what} match {hash_or_prefix!r}; pass a full hash (or a unique prefix "
                    "of at least 8 digits) as `medfleet site apps` lists them"
                )
            removed = apps.pop(matches[0])
            self._write(apps)
        return removed

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.state_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, apps: dict[str, ApprovedApp]) -> None:
        entries = {h: {k: v for k, v in asdict(a).items() if k != "hash"} for h, a in apps.items()}
        text = json.dumps({"format": _FORMAT, "apps": entries}, indent=2, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".approved-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
