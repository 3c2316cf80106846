"""`medfleet convert nifti`: turn NIfTI image/label pairs into per-site DICOM (MR + SEG)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["read_case_list", "register"]


def register(subparsers: Any) -> None:
    """Add the `convert` command and its `nifti` sub-command."""
    convert = subparsers.add_parser(
        "convert", help="convert research data into per-site DICOM folders"
    )
    kinds = convert.add_subparsers(dest="convert_kind", metavar="KIND", required=True)
    parser = kinds.add_parser(
        "nifti",
        help="NIfTI image/label pairs -> MR series + DICOM SEG, split across sites",
        description=(
            "Pair imagesTr/<case>.nii.gz with labelsTr/<case>.nii.gz, split the cases "
            "deterministically across sites and write each as an MR Image series and a "
            "DICOM SEG under OUT/site-<k>/, with pseudonymous patient IDs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of image NIfTI files")
    parser.add_argument("--labels", type=Path, required=True, help="folder of label NIfTI files")
    parser.add_argument("--sites", type=int, default=3, help="number of sites")
    parser.add_argument("--out", type=Path, required=True, help="parent of the site folders")
    parser.add_argument(
        "--exclude-list",
        type=Path,
        default=None,
        help="text file of case names to leave out (one per line, '#' comments)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the UIDs")
    parser.add_argument(
        "--segment-labels", default="", help="comma-separated names of classes 1..K"
    )
    parser.set_defaults(func=_run)


def read_case_list(path: Path) -> set[str]:
    """Read case names, one per line; folders and .nii/.nii.gz suffixes are dropped."""
    names = set()
    for line in Path(path).read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            name = Path(name).name
            for suffix in (".nii.gz", ".nii"):
                name = name.removesuffix(suffix)
            names.add(name)
    return names


def _run(args: argparse.Namespace) -> int:
    from shared.errors import ConfigError
    from shared.volumes.convert import convert_nifti_sites

    exclude: set[str] = set()
    if args.exclude_list is not None:
        if not args.exclude_list.is_file():
            raise ConfigError("--exclude-list file not found; pass a text file of case names")
        exclude = read_case_list(args.exclude_list)
    labels = [name.strip() for name in args.segment_labels.split(",") if name.strip()]
    sites = convert_nifti_sites(
        args.images, args.labels, args.out, args.sites, exclude, args.seed, labels or None
    )
    for site in sites:
        count = sum(1 for path in site.iterdir() if path.is_dir())
        print(f"{site}: {count} cases")
    return 0
