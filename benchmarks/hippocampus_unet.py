"""Benchmark: federated vs central U-Net on MSD Task04 Hippocampus, scored on held-out cases."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from monai.data import CacheDataset
from torch.utils.data import ConcatDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.bundle import load_bundle
from shared.config import RunConfig, parse_overrides  # noqa: E402
from shared.tasks import get_task  # noqa: E402
from shared.tasks.base import SiteData, Task, TrainSettings  # noqa: E402
from shared.tasks.seg_transforms import eval_transforms  # noqa: E402
from shared.volumes import convert_nifti_sites, index_segmentation_site  # noqa: E402
from simulations.runner import SimulationOptions, run_simulation_job  # noqa: E402

logger = logging.getLogger("medfleet.bench")

N_SITES = 3
METRICS = ("dice", "dice_1", "dice_2", "hd95", "hd95_1", "hd95_2")
NNUNET_DICE = 0.895  # nnU-Net, Isensee et al. 2021: about 0.89-0.90 mean Dice


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults take about 25 minutes on 2 busy CPU cores."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", type=Path, help="msd_task04_hippocampus folder")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "medfleet-hippo",
        help="scratch folder for the DICOM sites and runs (outside the repo)",
    )
    parser.add_argument(
        "--result", type=Path, default=None, help="JSON result file (default WORK/hippocampus.json)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra seg-* run-config key, e.g. seg-spatial-dims=2",
    )
    return parser.parse_args(argv)


def run_config(args: argparse.Namespace, sites_root: Path, out_dir: Path) -> RunConfig:
    """The run config shared by the federated run and the central baseline."""
    extra = {"seg-samples-per-case": 2, **parse_overrides(args.options)}
    return RunConfig.from_mapping(
        {
            **extra,
            "task": "segmentation",
            "num-server-rounds": args.rounds,
            "local-epochs": args.local_epochs,
            "batch-size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "min-sites": N_SITES,
            "device": "cpu",
            "sim-data-root": str(sites_root),
            "out-dir": str(out_dir),
        }
    )


def prepare_sites(data: Path, work: Path, test_cases: set[str], seed: int) -> Path:
    """Convert the non-test NIfTI cases into per-site DICOM folders (reused when present)."""
    root = work / "sites"
    if (root / "site-1").is_dir():
        logger.info("reusing DICOM sites in %s", root)
        return root
    started = time.monotonic()
    convert_nifti_sites(
        data / "imagesTr",
        data / "labelsTr",
        root,
        N_SITES,
        exclude=test_cases,
        seed=seed,
        segment_labels=("anterior hippocampus", "posterior hippocampus"),
    )
    logger.info("converted to DICOM in %.0f s", time.monotonic() - started)
    return root


def held_out_data(data: Path, work: Path, test_cases: set[str]) -> SiteData:
    """The held-out cases, read from NIfTI through the same indexer (symlinks only)."""
    root = work / "test"
    for kind in ("imagesTr", "labelsTr"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for name in sorted(test_cases):
            link = root / kind / f"{name}.nii.gz"
            if not link.exists():
                link.symlink_to((data / kind / f"{name}.nii.gz").resolve())
    cases, _ = index_segmentation_site(root)
    if len(cases) != len(test_cases):
        raise SystemExit(f"expected {len(test_cases)} test cases, indexed {len(cases)}")
    items = [{"case": case} for case in cases]
    val = CacheDataset(items, eval_transforms(), num_workers=0, progress=False)
    return SiteData(name="test", train=[], val=val)


def run_federated(run: RunConfig, sites_root: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train across the 3 sites with the real ServerApp/ClientApps; return model and record."""
    started = time.monotonic()
    record = run_simulation_job(SimulationOptions(run, N_SITES, sites_root))
    wall = time.monotonic() - started
    if record.get("status") != "completed":
        raise SystemExit("the federated run did not complete; see its log")
    task, model = load_bundle(Path(run.out_dir)).build()
    curve = [r["evaluate"]["aggregated"].get("dice") for r in record["rounds"]]
    return model, {"wall_s": wall, "val_dice_by_round": curve}


def run_central(task: Task, run: RunConfig, sites_root: Path) -> tuple[torch.nn.Module, dict]:
    """Train the same network on the pooled training cases of all sites, same total epochs."""
    started = time.monotonic()
    sites = [task.load_site(site) for site in sorted(sites_root.glob("site-*"))]
    pooled = SiteData("central", ConcatDataset([s.train for s in sites]), [])
    model = task.build_model()
    epochs = run.num_rounds * run.local_epochs
    settings = TrainSettings(epochs, run.batch_size, run.lr, run.seed, torch.device("cpu"))
    result = task.train_round(model, pooled, settings)
    wall = time.monotonic() - started
    logger.info("central: %d epochs on %d cases in %.0f s", epochs, pooled.num_train, wall)
    return model, {"wall_s": wall, "train_cases": pooled.num_train, **result.metrics}


def score(task: Task, model: torch.nn.Module, test: SiteData) -> dict[str, float]:
    """Dice and HD95 (mm) per class and mean on the held-out cases."""
    settings = TrainSettings(1, 1, 1e-3, 0, torch.device("cpu"))
    return task.evaluate(model, test, settings).metrics


def table(results: dict[str, Any]) -> str:
    """Markdown table: one row per model, with wall time and Dice ratio to central."""
    central = results["central"]["test"]["dice"]
    head = "| model | " + " | ".join(METRICS) + " | wall time | Dice vs central |"
    lines = [head, "|" + " --- |" * (len(METRICS) + 3)]
    for name in ("federated", "central"):
        entry = results[name]
        cells = [f"{entry['test'][m]:.3f}" for m in METRICS]
        ratio = entry["test"]["dice"] / central
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {entry['wall_s'] / 60:.1f} min | "
            f"{ratio:.3f} |"
        )
    lines.append(f"| nnU-Net (published) | ~{NNUNET_DICE} | | | | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Convert, train federated and central, score both on the 52 held-out cases."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    data, work = args.data.resolve(), args.work.resolve()
    test_cases = set((data / "test_cases.txt").read_text().split())
    sites_root = prepare_sites(data, work, test_cases, args.seed)
    run = run_config(args, sites_root, work / "federated")
    task = get_task(run)
    test = held_out_data(data, work, test_cases)
    fed_model, fed = run_federated(run, sites_root)
    fed["test"] = score(task, fed_model, test)
    central_model, central = run_central(task, run, sites_root)
    central["test"] = score(task, central_model, test)
    results = {
        "dataset": "MSD Task04 Hippocampus: 208 training cases over 3 sites, 52 held out",
        "machine": f"{os.cpu_count()} CPU cores, no GPU ({platform.machine()})",
        "torch_threads": torch.get_num_threads(),
        "config": {k: v for k, v in run.to_mapping().items() if not k.startswith("secagg")},
        "test_cases": len(test_cases),
        "federated": fed,
        "central": central,
        "dice_ratio_federated_to_central": fed["test"]["dice"] / central["test"]["dice"],
    }
    result_path = args.result or work / "hippocampus.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"result written to {result_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
