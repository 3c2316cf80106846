"""A site's PACS settings (`pacs.toml`): read once, checked, turned into frozen values."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

__all__ = ["ListenConfig", "PacsConfig", "PacsSettings", "SavedQuery", "load_pacs_settings"]

_TOP = ("cache-dir", "labels-csv", "pacs", "listen")
_PACS = (
    "host", "port", "called-ae", "calling-ae", "retrieve", "move-port", "dicomweb", "timeout",
    "query",
)  # fmt: skip
_RETRIEVE = ("get", "move")
_QUERY = ("modality", "body-part", "study-description", "date-from", "date-to")
_LISTEN = ("ae-title", "port", "host", "allowed-calling-ae")
# DICOM's AE and CS value representations (PS3.5 6.2): AE 16 characters, no backslash.
_AE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")
_CODE = re.compile(r"[A-Z0-9_ ]{1,16}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


@dataclass(frozen=True)
class SavedQuery:
    """Which studies a site trains on: each key narrows the query; empty keys match all."""

    modality: str = ""
    body_part: str = ""
    study_description: str = ""
    date_from: str = ""
    date_to: str = ""

    @property
    def date_range(self) -> str:
        """The DICOM date range (``20200101-20261231``, ``20200101-``), empty for all dates."""
        if not (self.date_from or self.date_to):
            return ""
        return f"{self.date_from}-{self.date_to}"


@dataclass(frozen=True)
class PacsConfig:
    """One PACS: DIMSE (host, port, AE titles) or DICOMweb (its base URL).

    DIMSE retrieves with C-GET (``retrieve = "get"``: the instances come back on the
    same association) or C-MOVE (``"move"``: the PACS opens an association to this site's
    calling AE title on ``move-port``, which the PACS must know as a modality).
    """

    name: str
    query: SavedQuery
    host: str = ""
    port: int = 0
    called_ae: str = ""
    calling_ae: str = "MEDFLEET"
    retrieve: str = "get"
    move_port: int = 0
    dicomweb: str = ""
    timeout: float = 30.0

    @property
    def protocol(self) -> str:
        """``dicomweb`` (QIDO-RS, WADO-RS, STOW-RS) or ``dimse`` (C-FIND, C-GET, C-STORE)."""
        return "dicomweb" if self.dicomweb else "dimse"


@dataclass(frozen=True)
class ListenConfig:
    """The storage SCP of `medfleet site listen`."""

    ae_title: str
    port: int
    allowed_calling_ae: tuple[str, ...]
    host: str = "0.0.0.0"


@dataclass(frozen=True)
class PacsSettings:
    """Everything in a site's PACS file."""

    cache_dir: Path
    pacs: Mapping[str, PacsConfig]
    listen: ListenConfig | None = None
    labels_csv: Path | None = None

    def get(self, name: str | None) -> PacsConfig:
        """The PACS called `name` (the only one when None), or a ConfigError naming the known."""
        known = sorted(self.pacs)
        if name is None and len(known) == 1:
            return self.pacs[known[0]]
        if name is not None and name in self.pacs:
            return self.pacs[name]
        wanted = "name one with --pacs" if name is None else f"no PACS named {name!r}"
        raise ConfigError(f"{wanted}; the PACS file defines {', '.join(known) or 'none'}")


def load_pacs_settings(path: Path) -> PacsSettings:
    """Read and check a site's PACS file; relative paths in it are relative to its folder.

    Raises
    ------
    ConfigError
        Naming the section and key to fix; the file's path and the bad value go only
        into the site-local detail.
    """
    path = Path(path).expanduser()
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            "PACS file not found: pass --pacs-config or write pacs.toml in the site's state "
            "folder (see the README's 'Working with your PACS')",
            local=str(path),
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("PACS file is not valid TOML", local=f"{path}: {err}") from None
    where = str(path)
    _known(raw, _TOP, "the PACS file", where)
    base = path.resolve().parent
    if not raw.get("cache-dir"):
        raise ConfigError(
            "PACS file lacks cache-dir: the folder retrieved studies go to", local=where
        )
    pacs = raw.get("pacs", {})
    if not isinstance(pacs, dict) or not pacs:
        raise ConfigError("PACS file defines no [pacs.NAME] section", local=where)
    labels = raw.get("labels-csv")
    return PacsSettings(
        cache_dir=base / Path(str(raw["cache-dir"])).expanduser(),
        pacs={name: _pacs(str(name), entry, where) for name, entry in pacs.items()},
        listen=_listen(raw["listen"], where) if "listen" in raw else None,
        labels_csv=base / Path(str(labels)).expanduser() if labels else None,
    )


def _pacs(name: str, entry: Any, where: str) -> PacsConfig:
    section = f"[pacs.{name}]"
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{section}: a PACS name is letters, digits, - and _", local=where)
    if not isinstance(entry, dict):
        raise ConfigError(f"{section} must be a table of keys", local=where)
    _known(entry, _PACS, section, where)
    query = entry.get("query", {})
    _known(query, _QUERY, f"[pacs.{name}.query]", where)
    if bool(entry.get("dicomweb")) == bool(entry.get("host")):
        raise ConfigError(
            f"{section} needs exactly one of host (DIMSE, with port and called-ae) or "
            "dicomweb (the DICOMweb base URL)",
            local=where,
        )
    timeout = entry.get("timeout", 30.0)
    if not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise ConfigError(f"{section} timeout must be seconds in (0, 3600]", local=where)
    saved = _query(query, f"[pacs.{name}.query]", where)
    if entry.get("dicomweb"):
        url = str(entry["dicomweb"])
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{section} dicomweb must be an http:// or https:// URL", local=where)
        return PacsConfig(name, saved, dicomweb=url.rstrip("/"), timeout=float(timeout))
    for key in ("port", "called-ae"):
        if key not in entry:
            raise ConfigError(
                f"{section} lacks {key} (DIMSE needs host, port, called-ae)", local=where
            )
    retrieve = str(entry.get("retrieve", "get"))
    if retrieve not in _RETRIEVE:
        raise ConfigError(f"{section} retrieve must be get (C-GET) or move (C-MOVE)", local=where)
    if retrieve == "move" and "move-port" not in entry:
        raise ConfigError(
            f"{section} retrieve = move needs move-port: the local port the PACS sends to",
            local=where,
        )
    return PacsConfig(
        name,
        saved,
        retrieve=retrieve,
        move_port=_port(entry["move-port"], section, where) if "move-port" in entry else 0,
        host=str(entry["host"]),
        port=_port(entry["port"], section, where),
        called_ae=_ae(entry["called-ae"], f"{section} called-ae", where),
        calling_ae=_ae(entry.get("calling-ae", "MEDFLEET"), f"{section} calling-ae", where),
        timeout=float(timeout),
    )


def _query(query: Mapping[str, Any], section: str, where: str) -> SavedQuery:
    values = {key: str(query.get(key, "")) for key in _QUERY}
    for key in ("modality", "body-part"):
        if values[key] and not _CODE.fullmatch(values[key]):
            raise ConfigError(
                f"{section} {key} must be a DICOM code string (upper case, up to 16), e.g. MR",
                local=where,
            )
    if len(values["study-description"]) > 64 or "\\" in values["study-description"]:
        raise ConfigError(f"{section} study-description: up to 64 characters, no \\", local=where)
    for key in ("date-from", "date-to"):
        if values[key]:
            try:
                datetime.strptime(values[key], "%Y%m%d")
            except ValueError:
                raise ConfigError(f"{section} {key} must be a date YYYYMMDD", local=where) from None
    if values["date-from"] and values["date-to"] and values["date-from"] > values["date-to"]:
        raise ConfigError(f"{section} date-from is after date-to", local=where)
    return SavedQuery(*(values[key] for key in _QUERY))


def _listen(entry: Any, where: str) -> ListenConfig:
    if not isinstance(entry, dict):
        raise ConfigError("[listen] must be a table of keys", local=where)
    _known(entry, _LISTEN, "[listen]", where)
    for key in ("ae-title", "port", "allowed-calling-ae"):
        if key not in entry:
            raise ConfigError(f"[listen] lacks {key}", local=where)
    allowed = entry["allowed-calling-ae"]
    if not isinstance(allowed, list) or not allowed:
        raise ConfigError(
            "[listen] allowed-calling-ae must list the AE titles (of the PACS, the modalities) "
            "that may send studies here",
            local=where,
        )
    return ListenConfig(
        ae_title=_ae(entry["ae-title"], "[listen] ae-title", where),
        port=_port(entry["port"], "[listen]", where),
        allowed_calling_ae=tuple(_ae(a, "[listen] allowed-calling-ae", where) for a in allowed),
        host=str(entry.get("host", "0.0.0.0")),
    )


def _known(entry: Mapping[str, Any], keys: tuple[str, ...], section: str, where: str) -> None:
    for key in entry:
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"{section}: unknown key '{key}'{hint}; known: {', '.join(keys)}", local=where
            )


def _port(value: Any, section: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{section} port must be an integer from 1 to 65535", local=where)
    return value


def _ae(value: Any, key: str, where: str) -> str:
    text = str(value)
    if not _AE.fullmatch(text) or not text.strip():
        raise ConfigError(
            f"{key} must be an AE title: 1 to 16 ASCII characters, no backslash", local=where
        )
    return text.strip()
