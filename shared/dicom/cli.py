"""The `medfleet data check DIR` command: index a site's DICOM folder and print its report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command group and its ``check`` sub-command."""
    data = subparsers.add_parser("data", help="inspect a site's DICOM data")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="index a DICOM folder and report usable images and skipped files",
        description="Index DIR and report files, series, usable images per modality and "
        "skipped files by reason. Exit code 0 when at least one image is usable.",
    )
    check.add_argument("dir", type=Path, metavar="DIR", help="the site's data folder")
    # Own dest: `verbose` is the top-level debug-logging flag and would be overwritten.
    check.add_argument(
        "--verbose",
        dest="list_skipped",
        action="store_true",
        help="list each skipped file with its reason (paths stay on this site)",
    )
    check.add_argument("--json", action="store_true", help="print the count summary as JSON")
    check.add_argument(
        "--seg-inputs",
        default="",
        metavar="PATTERNS",
        help="index as segmentation cases combining these series per study, as the run-config "
        "key seg-inputs (e.g. 'MR:T1*,MR:T2*'): studies left out are counted by reason",
    )
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Index ``args.dir`` and print its report; return 0 when an image is usable, else 1."""
    if args.seg_inputs:
        return _check_study_inputs(args)
    from shared.dicom.index import index_folder

    records, report = index_folder(args.dir)
    if args.json:
        print(json.dumps(report.summary(), indent=2))
    else:
        print(f"MedFleet data check: {args.dir}")
        print(report.format(verbose=args.list_skipped))
    return 0 if records else 1


def _check_study_inputs(args: argparse.Namespace) -> int:
    """Report the segmentation cases `--seg-inputs` finds; 0 when there is one."""
    from shared.series_inputs import parse_series_inputs
    from shared.volumes import index_segmentation_site

    inputs = parse_series_inputs(args.seg_inputs, key="--seg-inputs")
    cases, report = index_segmentation_site(args.dir, inputs)
    if args.json:
        print(json.dumps(report.summary(), indent=2))
    else:
        print(f"MedFleet data check: {args.dir} (seg-inputs {', '.join(map(str, inputs))})")
        print(report.format(verbose=args.list_skipped))
        print(f"segmentation cases: {len(cases)}")
    return 0 if cases else 1
