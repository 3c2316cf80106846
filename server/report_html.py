"""HTML building blocks of the run report: one page, inline CSS, every value escaped."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

__all__ = ["cell", "image", "key_values", "note", "page", "section", "table"]

# Inline and system fonts only: the report opens offline, from a USB stick or an email.
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr.overall td { font-weight: bold; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
.note { color: #666; font-style: italic; }
.status-completed { color: #17702b; } .status-failed { color: #b00020; }
nav a { margin-right: 1em; } figure { margin: 1em 0; } figcaption { color: #555; }
details summary { cursor: pointer; margin: .5em 0; }
table.settings td { text-align: left; }
.samples { display: flex; flex-wrap: wrap; gap: 1em; }
.samples img { width: 260px; image-rendering: pixelated; }
"""


def page(title: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: a title, a table of contents and the `(id, title, html)` sections."""
    links = " ".join(f'<a href="#{escape(sid)}">{escape(name)}</a>' for sid, name, _ in sections)
    body = "\n".join(section(sid, name, html) for sid, name, html in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><h1>{escape(title)}</h1><nav>{links}</nav>\n{body}\n</body></html>\n"
    )


def section(section_id: str, title: str, html: str) -> str:
    """One report section; `html` is already built from escaped parts."""
    return f'<section id="{escape(section_id)}"><h2>{escape(title)}</h2>\n{html}\n</section>'


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    bold_first: str | None = None,
) -> str:
    """A table of `rows`; a row whose first cell equals `bold_first` is shown in bold."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    lines = []
    for row in rows:
        marked = bold_first is not None and row and str(row[0]) == bold_first
        cells = "".join(f"<td>{escape(cell(v))}</td>" for v in row)
        lines.append(f'<tr class="overall">{cells}</tr>' if marked else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of settings."""
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(cell(v))}</td></tr>" for k, v in pairs
    )
    return f'<table class="settings"><tbody>{rows}</tbody></table>'


def image(data_uri: str, alt: str, caption: str = "") -> str:
    """An embedded PNG (a ``data:image/png;base64,`` URI) with its caption."""
    note_html = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{escape(data_uri)}" alt="{escape(alt)}">{note_html}</figure>'


def note(text: str) -> str:
    """A short remark: why a plot is missing, what a number means."""
    return f'<p class="note">{escape(text)}</p>'


def cell(value: Any) -> str:
    """A value as the tables show it: floats to 4 significant digits, None as '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) or "none"
    return str(value)
