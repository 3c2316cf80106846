"""`medfleet report RUN_DIR`: rebuild a run's report.html from its run.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the `report` sub-command."""
    parser = subparsers.add_parser(
        "report",
        help="rebuild a run's self-contained report.html from its run.json",
        description=(
            "Build the run report (summary, privacy settings, per-round and per-site "
            "metrics, loss curves and the task's plots) from a run folder's run.json and "
            "the files the server wrote there. The page needs no network to open."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run's out-dir")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write it (default: RUN_DIR/report.html)"
    )
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from server.report import write_report

    print(f"run report: {write_report(args.run_dir, args.out)}")
    return 0
