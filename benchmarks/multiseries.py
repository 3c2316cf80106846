"""Segmentation from one series (T1) against two series of each study (T1 + T2), federated.

Usage (one command):
    python benchmarks/multiseries.py [--work DIR] [--rounds 6] [--local-epochs 4] [--result FILE]

Data: the synthetic two-contrast MR sites (``medfleet synth --task segmentation-t1t2``),
3 federated sites plus a 4th, unseen site whose every case is the test set. Nucleus 2 has
no T1 contrast and shows only on the T2 series, which lies on a coarser grid (1.25 x the
pixels, 1.6 x the slice gap); the SEG labels the T1. Both runs train the same U-Net with
the same schedule under Flower's simulation engine (real ServerApp and ClientApps); they
differ only in ``seg-inputs``: ``MR:T1*`` (one channel) or ``MR:T1*,MR:T2*`` (the T2
resampled onto the T1 grid with MONAI's ResampleToMatch as a second channel).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from monai.data import CacheDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.bundle import load_bundle  # noqa: E402
from shared.config import RunConfig  # noqa: E402
from shared.tasks.base import SiteData, Task, TrainSettings  # noqa: E402
from shared.tasks.seg_transforms import eval_transforms  # noqa: E402
from shared.volumes import index_segmentation_site  # noqa: E402
from simulations.runner import SimulationOptions, run_simulation_job  # noqa: E402
from simulations.synth import generate_sites  # noqa: E402

logger = logging.getLogger("medfleet.bench")

N_SITES = 3
INPUTS = {"T1 only": "MR:T1*", "T1 + T2": "MR:T1*,MR:T2*"}
METRICS = ("dice_1", "dice_2", "dice")
#: The demo segmentation network (README), small enough for 2 CPU cores.
NETWORK = {
    "task": "segmentation",
    "batch-size": 4,
    "lr": 0.01,
    "seg-channels": "8,16,32",
    "seg-res-units": 1,
    "seg-samples-per-case": 8,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/bench-multiseries"))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--local-epochs", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0, help="synthetic site size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--result", type=Path, default=None)
    return parser.parse_args(argv)


def prepare_sites(work: Path, seed: int, scale: float) -> tuple[Path, Path]:
    """Write 3 federated two-contrast sites and a 4th held out as the test site."""
    sites, test = work / "sites", work / "test"
    if not sites.is_dir():
        generated = generate_sites(
            work / "generated", N_SITES + 1, seed, task="segmentation-t1t2", scale=scale
        )
        sites.mkdir(parents=True)
        for site in generated[:N_SITES]:
            site.rename(sites / site.name)
        generated[N_SITES].rename(test)
        shutil.rmtree(work / "generated")
    return sites, test


def run_config(args: argparse.Namespace, sites: Path, out: Path, inputs: str) -> RunConfig:
    return RunConfig.from_mapping(
        {
            **NETWORK,
            "seg-inputs": inputs,
            "num-server-rounds": args.rounds,
            "local-epochs": args.local_epochs,
            "seed": args.seed,
            "min-sites": N_SITES,
            "sim-data-root": str(sites),
            "out-dir": str(out),
            "device": "cpu",
        }
    )


def test_data(task: Task, test_site: Path) -> SiteData:
    """Every labelled case of the unseen site, loaded as the task loads validation cases."""
    cases, _ = index_segmentation_site(test_site, task.options.inputs)  # type: ignore[attr-defined]
    items = [{"case": case} for case in cases]
    val = CacheDataset(items, eval_transforms(), num_workers=0, progress=False)
    return SiteData(name="test", train=[], val=val)


def train_and_score(run: RunConfig, sites: Path, test_site: Path) -> dict[str, Any]:
    """Federated training with the real apps, then Dice on the unseen site."""
    started = time.monotonic()
    record = run_simulation_job(SimulationOptions(run, N_SITES, sites))
    wall = time.monotonic() - started
    if record.get("status") != "completed":
        raise SystemExit("the federated run did not complete; see its log")
    task, model = load_bundle(Path(run.out_dir)).build()
    test = test_data(task, test_site)
    settings = TrainSettings(1, 1, 1e-3, 0, torch.device("cpu"))
    metrics = task.evaluate(model, test, settings).metrics
    curve = [r["evaluate"]["aggregated"].get("dice") for r in record["rounds"]]
    return {"wall_s": wall, "test_cases": len(test.val), "test": metrics, "val_dice": curve}


def table(results: dict[str, Any]) -> str:
    """Markdown table: Dice per class and mean for each input, and the ratio to T1 only."""
    base = results["runs"]["T1 only"]["test"]["dice"]
    lines = [
        "| seg-inputs | Dice nucleus 1 | Dice nucleus 2 | mean Dice | wall time | vs T1 only |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in results["runs"].items():
        cells = " | ".join(f"{entry['test'][m]:.3f}" for m in METRICS)
        ratio = entry["test"]["dice"] / base if base else float("nan")
        lines.append(f"| {name} | {cells} | {entry['wall_s'] / 60:.1f} min | {ratio:.2f} |")
    return "\n".join(lines)


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True)
    return done.stdout.decode().strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    """Generate the sites, train T1 only and T1 + T2, score both on the unseen site."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    work = args.work.resolve()
    sites, test_site = prepare_sites(work, args.seed, args.scale)
    runs = {}
    for name, inputs in INPUTS.items():
        out = work / name.replace(" ", "").replace("+", "-")
        shutil.rmtree(out, ignore_errors=True)
        runs[name] = train_and_score(run_config(args, sites, out, inputs), sites, test_site)
    results = {
        "data": "synthetic two-contrast MR, 3 sites + 1 unseen test site",
        "machine": f"{os.cpu_count()} CPU cores, no GPU ({platform.machine()})",
        "commit": _commit(),
        "schedule": {"rounds": args.rounds, "local_epochs": args.local_epochs, **NETWORK},
        "runs": runs,
    }
    path = args.result or work / "multiseries.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"result written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
