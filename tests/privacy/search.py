"""Search what the server side holds for a site's identifying values and file paths."""

from __future__ import annotations

import base64
import io
import re
import sqlite3
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from simulations.synth.identity import identifying_values

__all__ = ["GENERIC_NAMES", "Hit", "Needles", "pacs_values", "search"]

#: File names every site has (kinds, not facts about a site): searched as full paths only.
GENERIC_NAMES = frozenset({"labels.csv", "lesions.csv", "site.json"})


@dataclass(frozen=True)
class Hit:
    """One needle found in one place."""

    needle: str
    site: str
    where: str


@dataclass(frozen=True)
class Needles:
    """What must never be found at the server, per site.

    `values`: the generated identifying header values (names also with spaces for
    carets), every file and folder path under the site's data folder, absolute and
    relative to it, and the name of every folder and file in it (but `GENERIC_NAMES`
    and names under 5 characters, such as ``MR``).
    """

    by_site: dict[str, frozenset[str]]

    @classmethod
    def of_sites(cls, data_root: Path, site_dirs: dict[str, Path]) -> Needles:
        """Needles of the sites in ``site_dirs`` (site name -> data folder) under ``data_root``.

        A site folder's own name is left out when it is the site's name, which is sent
        by design; its full path is not.
        """
        values = identifying_values(data_root)
        by_site: dict[str, frozenset[str]] = {}
        for name, folder in site_dirs.items():
            found = set(values[folder.name])
            found |= {v.replace("^", " ") for v in found if "^" in v}
            found |= {str(folder), str(folder.resolve())}
            if folder.name != name:
                found.add(folder.name)
            for path in folder.rglob("*"):
                found |= {str(path), str(path.relative_to(folder))}
                if len(path.name) >= 5 and path.name not in GENERIC_NAMES:
                    found.add(path.name)
            by_site[name] = frozenset(found)
        return cls(by_site)

    def without_those_in(self, folder: Path) -> tuple[Needles, set[str]]:
        """Drop needles the server's own files under ``folder`` hold (the app's source:
        a file-name pattern such as ``IM00001.dcm`` or ``site-1`` in a docstring).

        Returns the remaining needles and the dropped ones, to be shown.
        """
        code = [data for _, data in _haystacks([folder])]
        dropped = {n for v in self.by_site.values() for n in v if any(_found(n, d) for d in code)}
        kept = {site: frozenset(v - dropped) for site, v in self.by_site.items()}
        return Needles(kept), dropped

    def plus(self, site: str, values: Iterable[str]) -> Needles:
        """These needles and `values` for `site` (e.g. its PACS settings, `pacs_values`)."""
        by_site = dict(self.by_site)
        by_site[site] = by_site.get(site, frozenset()) | frozenset(values)
        return Needles(by_site)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_site.values())


def pacs_values(config: Path) -> frozenset[str]:
    """What a site's PACS file says, none of which may reach the server.

    Every value in it (PACS names, hosts, ports, AE titles, DICOMweb URLs, the saved
    query's modality, body part, description pattern and dates, the cache and labels
    paths), ``host:port`` pairs, and the file's own path. Values under 5 characters
    (``MR``) and loopback hosts are left out: they are words every log holds, not facts
    about the site; a port is a needle on its own and in its ``host:port``.
    """
    raw = tomllib.loads(config.read_text())
    found = {str(config), str(config.resolve())}

    def walk(node: object, key: str = "") -> None:
        if isinstance(node, dict):
            found.update(str(k) for k in node if key == "pacs")
            for name, value in node.items():
                walk(value, str(name))
        elif isinstance(node, list):
            for value in node:
                walk(value, key)
        else:
            found.add(str(node))

    walk(raw)
    ports = set()
    for entry in [*raw.get("pacs", {}).values(), raw.get("listen", {})]:
        if "port" in entry:
            ports.add(str(entry["port"]))
            found.add(f"{entry.get('host', '')}:{entry['port']}")
    loopback = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
    return frozenset({v for v in found if len(v) >= 5 and v not in loopback} | ports)


_ENCODINGS = (("utf-8", b""), ("utf-32-le", b"\0\0\0"), ("utf-16-le", b"\0"))


def _found(needle: str, data: bytes) -> bool:
    """Case-insensitive (``data`` is lowered), in UTF-8 and the wide encodings of numpy
    strings (UTF-32, UTF-16); a number-only needle (date, time) must not touch digits."""
    numeric = needle.replace(".", "").isdigit()
    for encoding, pad in _ENCODINGS:
        body = needle.lower().encode(encoding)
        if body not in data:  # fast literal scan first
            continue
        if not numeric:
            return True
        digit = b"[0-9]" + re.escape(pad)
        if re.search(b"(?<!" + digit + b")" + re.escape(body) + b"(?!" + digit + b")", data):
            return True
    return False


#: An embedded file in HTML (the run report's plots): ``data:image/png;base64,...``.
_DATA_URI = re.compile(rb"data:[\w./+-]+;base64,([A-Za-z0-9+/=]+)")


def _blobs(path: Path) -> Iterator[tuple[str, bytes]]:
    """A file's bytes, plus the members of zip files (npz, torch), SQLite rows as text and
    the decoded files embedded as base64 data URIs.

    A data URI is searched decoded, not as its base64 text: a short needle such as a
    patient ID turns up by chance in a few hundred kB of base64 (seen: ``P0008`` in the
    run report's PNGs), and a value written into the embedded file would not be seen.
    """
    data = path.read_bytes()
    embedded = [base64.b64decode(m.group(1)) for m in _DATA_URI.finditer(data)]
    yield str(path), _DATA_URI.sub(b"data:embedded", data) if embedded else data
    for index, payload in enumerate(embedded):
        yield f"{path}#embedded-{index}", payload
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield f"{path}!{member}", archive.read(member)
    if data.startswith(b"SQLite format 3\x00"):
        yield f"{path} (rows)", _sqlite_rows(path)


def _sqlite_rows(path: Path) -> bytes:
    out = io.BytesIO()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - own test DB
                for cell in row:
                    out.write(cell if isinstance(cell, bytes) else str(cell).encode())
                    out.write(b"\n")
    return out.getvalue()


def _haystacks(roots: Iterable[Path]) -> list[tuple[str, bytes]]:
    """Every file under ``roots`` (and its zip members, SQLite rows), lowered."""
    out: list[tuple[str, bytes]] = []
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            out.extend((where, data.lower()) for where, data in _blobs(path))
    return out


def search(
    needles: Needles, roots: Iterable[Path], texts: dict[str, str] | None = None
) -> tuple[list[Hit], int]:
    """Find every needle in every file under ``roots`` and in ``texts``.

    Returns
    -------
    tuple[list[Hit], int]
        The hits, and how many bytes were searched (to show the search saw something).
    """
    haystacks = _haystacks(roots)
    haystacks.extend((name, text.encode().lower()) for name, text in (texts or {}).items())
    lowered = haystacks
    hits = []
    for site, values in needles.by_site.items():
        for needle in sorted(values):
            hits.extend(Hit(needle, site, where) for where, data in lowered if _found(needle, data))
    return hits, sum(len(data) for _, data in haystacks)
