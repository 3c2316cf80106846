"""The identifier search itself: what it must find and what it must not mistake for a hit."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.privacy.search import Needles, search


def _report(path: Path, payload: bytes) -> Path:
    uri = "data:image/png;base64," + base64.b64encode(payload).decode("ascii")
    path.write_text(f'<html><body><img src="{uri}" alt="plot"></body></html>')
    return path


def test_a_needle_that_the_base64_text_spells_by_chance_is_no_hit(tmp_path: Path) -> None:
    # Prepare: bytes whose base64 text spells a patient ID (b64 "P0008xyz" decodes to them)
    payload = base64.b64decode("P0008xyzAAAA")
    report = _report(tmp_path / "report.html", payload)
    assert "p0008" in report.read_text().lower()
    needles = Needles({"site-a": frozenset({"P0008"})})

    # Execute
    hits, searched = search(needles, [tmp_path])

    # Assert: not found, yet the decoded image was searched as well as the page
    assert hits == []
    uri = "data:image/png;base64," + base64.b64encode(payload).decode("ascii")
    page = report.read_text().replace(uri, "data:embedded")
    assert searched == len(page) + len(payload)


def test_a_needle_inside_an_embedded_file_or_the_page_is_found(tmp_path: Path) -> None:
    # Prepare: one patient ID written into the embedded file, another in the page's text
    _report(tmp_path / "report.html", b"\x89PNG tEXt Comment\x00Patient P0011 scanned")
    (tmp_path / "page.html").write_text("<p>site-b P0012</p>")
    needles = Needles({"site-a": frozenset({"P0011"}), "site-b": frozenset({"P0012"})})

    # Execute
    hits, _ = search(needles, [tmp_path])

    # Assert
    found = sorted((h.needle, Path(h.where.split("#")[0]).name, "#" in h.where) for h in hits)
    assert found == [("P0011", "report.html", True), ("P0012", "page.html", False)]
