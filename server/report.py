"""The run report: one self-contained report.html built from run.json and the run folder.

It needs nothing from the sites (only what run.json and the server's own files hold)
and nothing online: the figures are PNGs inside the page, the styles inline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from server.report_cross_site import cross_site_section
from server.report_data import load_record
from server.report_html import note, page
from server.report_sections import (
    config_section,
    loss_section,
    overall_table,
    privacy_section,
    site_table,
    summary_section,
)
from server.report_tasks import (
    SCORE_GROUPS,
    confusion_section,
    dice_section,
    roc_section,
    samples_section,
    score_section,
)

__all__ = ["REPORT_FILE", "SECTIONS", "build_report", "write_report", "write_report_quietly"]

logger = logging.getLogger("medfleet.server")

REPORT_FILE = "report.html"

#: A section: (record, run folder) -> its HTML, or None when the run has nothing for it.
Section = Callable[[Mapping[str, Any], Path], "str | None"]

#: The report's sections in page order: (id, title, builder).
SECTIONS: tuple[tuple[str, str, Section], ...] = (
    ("summary", "Run summary", summary_section),
    ("privacy", "Privacy settings in force", privacy_section),
    ("overall", "Metrics per round (overall)", overall_table),
    ("per-site", "Metrics per round and site", site_table),
    ("losses", "Loss curves", loss_section),
    *((sid, title, score_section(keys)) for sid, title, keys in SCORE_GROUPS),
    ("confusion", "Confusion matrices", confusion_section),
    ("roc", "ROC curves", roc_section),
    ("dice", "Dice per class and site", dice_section),
    ("samples", "Generated samples by round", samples_section),
    ("cross-site", "Cross-site evaluation", cross_site_section),
    ("config", "Run config", config_section),
)


def build_report(run_dir: Path) -> str:
    """The report of the run in `run_dir` as one HTML document.

    Raises
    ------
    ReportError
        When `run_dir` holds no readable run.json.
    """
    run_dir = Path(run_dir)
    record = load_record(run_dir)
    parts = []
    for section_id, title, build in SECTIONS:
        try:
            html = build(record, run_dir)
        except Exception as err:  # one odd piece of a record must not cost the rest
            logger.warning("run report: section %s not drawn: %r", section_id, err)
            html = note(f"this section could not be drawn ({type(err).__name__})")
        if html:
            parts.append((section_id, title, html))
    task, status = record.get("task", "unknown task"), record.get("status", "unknown")
    return page(f"MedFleet run report: {task}, {status}", parts)


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report of `run_dir` to `out` (default: ``run_dir/report.html``).

    The file is replaced atomically, so a reader never sees half a report.
    """
    html = build_report(run_dir)
    target = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return target


def write_report_quietly(run_dir: Path) -> Path | None:
    """`write_report`, logging a warning instead of raising: a report never fails a run."""
    try:
        return write_report(run_dir)
    except Exception as err:
        logger.warning(
            "run report not written (%s: %s); rebuild it with `medfleet report %s`",
            type(err).__name__,
            err,
            run_dir,
        )
        return None
