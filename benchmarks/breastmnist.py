"""BreastMNIST: federated LesionCNN over 3 non-IID DICOM sites vs the same model trained centrally.

Usage:
    python benchmarks/breastmnist.py ../shared/data/medmnist/breastmnist.npz \
        [--rounds 20] [--local-epochs 2] [--out runs/bench-breastmnist]

The official training split (546 images) is dealt to 3 sites with different malignant
shares (label skew) and written as DICOM folders with MedFleet's own writer, so the real
DICOM path runs on real pixels. The federated run goes through the real ServerApp and
ClientApps under Flower's simulation engine. The central baseline trains the same network
with the same transforms, loss and number of epochs on the pooled train splits of the
sites. Both are scored once on the official test split (156 images), never used before.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from shared.bundle import load_bundle
from shared.config import RunConfig
from shared.tasks import get_task
from shared.tasks.base import SiteData, TrainSettings
from shared.tasks.classification import class_weights
from simulations.array_sites import split_non_iid, write_array_site
from simulations.runner import SimulationOptions, run_simulation_job

# MedMNIST BreastMNIST: 0 = malignant, 1 = normal/benign. MedFleet: 1 = malignant.
PUBLISHED = {"ResNet-18 (28), MedMNIST v2, centralised": (0.901, 0.863)}
# Share of each class per site: site-1 holds most malignant cases, site-3 few (non-IID).
SHARES = {1: (0.5, 0.3, 0.2), 0: (0.2, 0.35, 0.45)}


def write_sites(npz: Path, work: Path, seed: int) -> tuple[Path, Path]:
    data = np.load(npz)
    train_y = 1 - data["train_labels"].astype(int)
    sites_dir, test_dir = work / "sites", work / "test"
    shutil.rmtree(work, ignore_errors=True)
    parts = split_non_iid(train_y, [SHARES[0], SHARES[1]], seed=seed)
    for k, idx in enumerate(parts, start=1):
        write_array_site(
            data["train_images"][idx],
            train_y[idx],
            sites_dir / f"site-{k}",
            f"BMN{k}",
            modality="US",
        )
    write_array_site(
        data["test_images"], 1 - data["test_labels"].astype(int), test_dir, "BMNTEST", modality="US"
    )
    return sites_dir, test_dir


def score(task, model, test_dir: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    test = task.make_dataset(task.labelled_items(test_dir), train=False)
    data = SiteData("test", train=[], val=test)
    settings = TrainSettings(1, 64, 0.0, 0, torch.device("cpu"))
    return task.evaluate(model, data, settings).metrics


def schedule(rounds: int, local_epochs: int, seed: int, sites_dir: Path) -> dict[str, Any]:
    """The run config of a benchmark federation of the 3 written sites (out-dir aside)."""
    return {
        "num-server-rounds": rounds,
        "local-epochs": local_epochs,
        "seed": seed,
        "min-sites": 3,
        "device": "cpu",
        "sim-data-root": str(sites_dir),
    }


def federated_scores(
    run: RunConfig, sites_dir: Path, test_dir: Path
) -> tuple[dict[str, Any], dict[str, float], float]:
    """Train `run` on the 3 sites (real ServerApp and ClientApps); score its model on test.

    Returns the run record, the test metrics of the final global model and the seconds
    the federated training took.
    """
    started = time.monotonic()
    record = run_simulation_job(SimulationOptions(run, 3, sites_dir))
    seconds = time.monotonic() - started
    task, model = load_bundle(Path(run.out_dir)).build()
    return record, score(task, model, test_dir), seconds


def central(run: RunConfig, sites_dir: Path, epochs: int) -> tuple[object, object, float]:
    task = get_task(run)
    datas = [task.load_site(s) for s in sorted(sites_dir.iterdir())]
    labels = [int(item["label"]) for d in datas for item in d.train.data]
    pooled = SiteData(
        "pooled",
        ConcatDataset([d.train for d in datas]),
        [],
        extras={"class_weights": class_weights(labels)},
    )
    model = task.build_model()
    started = time.monotonic()
    for epoch in range(epochs):
        settings = TrainSettings(
            1, run.batch_size, run.lr, run.seed, torch.device("cpu"), epoch + 1
        )
        task.train_round(model, pooled, settings)
    return task, model, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("npz", type=Path, help="breastmnist.npz")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-breastmnist"))
    args = parser.parse_args()
    import flwr.common.logger  # noqa: F401  (sets Flower's level on import; override after)

    logging.getLogger("flwr").setLevel(logging.WARNING)
    out = args.out.resolve()
    sites_dir, test_dir = write_sites(args.npz, out / "data", args.seed)
    run = RunConfig.from_mapping(
        {
            **schedule(args.rounds, args.local_epochs, args.seed, sites_dir),
            "out-dir": str(out / "fed"),
        }
    )
    _, fed, fed_seconds = federated_scores(run, sites_dir, test_dir)
    task_c, central_model, central_seconds = central(
        run, sites_dir, args.rounds * args.local_epochs
    )
    cen = score(task_c, central_model, test_dir)
    rows = [
        ("MedFleet FedAvg, 3 non-IID sites", fed["auc"], fed["accuracy"], fed_seconds),
        (
            "Same CNN, centralised (pooled site train splits)",
            cen["auc"],
            cen["accuracy"],
            central_seconds,
        ),
    ] + [(name, auc, acc, None) for name, (auc, acc) in PUBLISHED.items()]
    print(
        f"\nBreastMNIST test split (156 images); {args.rounds} rounds x {args.local_epochs} "
        f"local epochs; {os.cpu_count()} CPU cores, no GPU"
    )
    print("| method | test AUC | test ACC | wall time |\n|---|---|---|---|")
    for name, auc, acc, seconds in rows:
        wall = f"{seconds:.0f} s" if seconds is not None else "-"
        print(f"| {name} | {auc:.3f} | {acc:.3f} | {wall} |")
    print(f"\nratio federated / centralised AUC: {fed['auc'] / cen['auc']:.3f}")
    (out / "result.json").write_text(
        json.dumps(
            {
                "federated": fed,
                "central": cen,
                "fed_seconds": fed_seconds,
                "central_seconds": central_seconds,
                "args": vars(args),
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
