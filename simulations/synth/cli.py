"""The `medfleet synth` sub-command: write synthetic hospital sites and summarise them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` sub-command to the ``medfleet`` parser."""
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic DICOM hospital sites (seeded, non-IID)",
        description="Write one folder of synthetic CT DICOM files per hospital site, "
        "with labels.csv and site.json.",
    )
    parser.add_argument("--sites", type=int, default=3, help="number of sites (default 3)")
    parser.add_argument("--out", type=Path, required=True, help="parent folder of the sites")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    # Checked against simulations.synth.generate.SITE_GENERATORS on use, keeping --help fast.
    parser.add_argument(
        "--task",
        default="classification",
        help="kind of data: classification (default), segmentation, segmentation-t1t2 (T1 + T2), "
        "gan, detection or series",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplier of per-site image counts"
    )
    parser.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    """Generate the sites and print one summary line per site."""
    from simulations.synth.generate import generate_sites

    sites = generate_sites(
        args.out, n_sites=args.sites, seed=args.seed, task=args.task, scale=args.scale
    )
    print(format_summary(sites))
    return 0


def format_summary(sites: list[Path]) -> str:
    """Return a table of each site's counts (whatever its task records) and matrix size."""
    infos = [(site, json.loads((site / "site.json").read_text())) for site in sites]
    keys = list(infos[0][1]["counts"]) if infos else []
    widths = [max(len(k), 8) + 2 for k in keys]
    header = f"{'site':<10}" + "".join(f"{k:>{w}}" for k, w in zip(keys, widths, strict=True))
    header += f"{'matrix':>10}{'spacing mm':>12}"
    lines = [header, "-" * len(header)]
    for site, info in infos:
        # The profile's matrix and pixel size describe the CT slices of classification
        # sites; other tasks' generators choose their own geometry.
        profile = info["profile"] if info.get("task") == "classification" else {}
        matrix = f"{profile['matrix']}x{profile['matrix']}" if "matrix" in profile else "-"
        cells = "".join(
            f"{_cell(info['counts'].get(k)):>{w}}" for k, w in zip(keys, widths, strict=True)
        )
        spacing = profile.get("pixel_spacing_mm")
        lines.append(f"{site.name:<10}{cells}{matrix:>10}{_cell(spacing):>12}")
    lines.append(f"wrote {len(sites)} sites under {sites[0].parent}" if sites else "no sites")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)
