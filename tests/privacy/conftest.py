"""Shared checks of the privacy proofs: a failing site's faults and the server-side search."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tests.privacy.search import Needles, search


class LogLines(logging.Handler):
    """Every log line formatted, kept to be searched (what the server side logged)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def truncate(path: Path, keep: int = 300) -> None:
    """Cut a DICOM file short inside its header, as a copy interrupted mid-write leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def skipped(metrics: dict[str, Any]) -> int:
    """Files a site reported skipped, over all reasons."""
    return sum(int(v) for k, v in metrics.items() if k.startswith("data_skipped_"))


def fit_metrics(record: dict[str, Any], rnd: int, site: str) -> dict[str, Any] | None:
    entry = next((r for r in record["rounds"] if r["round"] == rnd), None)
    if entry is None or not entry.get("fit"):
        return None
    return entry["fit"]["sites"].get(site)


def positive_control(needles: Needles, roots: list[Path], scratch: Path) -> list[str]:
    """Plant one site's values in copies of the server's files; return what search finds.

    A value goes into a text file (run.json), a binary (a model's bytes), a zip member
    (a checkpoint-like npz) and, when there is one, a SQLite database, so a search that
    could not see one of these kinds of file would fail here.
    """
    site, values = next(iter(needles.by_site.items()))
    numeric = sorted(v for v in values if v.replace(".", "").isdigit())
    textual = sorted(v for v in values if not v.replace(".", "").isdigit() and "/" not in v)
    paths = sorted(v for v in values if v.startswith("/"))
    planted = [textual[0], numeric[0], paths[-1], textual[-1]]
    scratch.mkdir(parents=True)
    for root in roots:
        if root.is_dir():
            shutil.copytree(root, scratch / root.name, dirs_exist_ok=True)
    run_json = next(scratch.rglob("run.json"))
    run_json.write_text(run_json.read_text()[:-2] + f', "planted": "{planted[0]}"' + "}\n")
    blob = scratch / "model.bin"
    blob.write_bytes(np.arange(4096, dtype=np.float32).tobytes() + f"x{planted[1]}x".encode())
    np.savez(scratch / "planted.npz", note=np.array([planted[2]]))
    databases = [p for p in scratch.rglob("*.db")]
    if databases:
        import sqlite3

        with sqlite3.connect(databases[0]) as db:
            db.execute("CREATE TABLE planted (value TEXT)")
            db.execute("INSERT INTO planted VALUES (?)", (planted[3],))
    else:
        (scratch / "log.txt").write_text(f"line {planted[3]}\n")
    hits, _ = search(Needles({site: frozenset(planted)}), [scratch])
    return sorted({hit.needle for hit in hits}) if hits else []


def check_no_hits(needles: Needles, roots: list[Path], texts: dict[str, str]) -> int:
    """Assert zero hits; return the bytes searched."""
    hits, searched = search(needles, roots, texts)
    shown = [f"{h.site}: {h.needle!r} in {h.where}" for h in hits[:20]]
    assert not hits, f"{len(hits)} hits:\n" + "\n".join(shown)
    return searched
