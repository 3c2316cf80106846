"""Series classification, federated: the recurrent cnn-gru against the same CNN's max over slices.

Usage:
    python benchmarks/series_gru.py [--rounds 20] [--local-epochs 2] [--scale 1.0] \
        [--difficulty 0.4] [--work DIR] [--result FILE]

Data: four synthetic series sites (`medfleet synth --task series`: CT series of 12 to 40
slices at 64 x 64, positive series holding one 6-12 mm nodule on the few slices it spans,
non-IID scanners, slice gaps and prevalence). Sites 1-3 train federated (FedAvg, the real
ServerApp and ClientApps under Flower's simulation engine); site 4 is never seen in
training and is the test set, scored once with each final global model.

Both models get the same schedule, seed, data and transforms: ``model = cnn-gru``
(LesionCNN's convolutional encoder per slice, a bidirectional GRU over the slices) and
``model = lesion-cnn`` (LesionCNN scoring every slice alone, the series scored by its
top slice), the baseline measured in the same run.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.checkpoint import load_checkpoint  # noqa: E402
from shared.config import RunConfig  # noqa: E402
from shared.tasks import get_task  # noqa: E402
from shared.tasks.base import SiteData, TrainSettings  # noqa: E402
from simulations.runner import SimulationOptions, run_simulation_job  # noqa: E402
from simulations.synth import generate_sites  # noqa: E402

MODELS = {
    "cnn-gru": "CNN + bidirectional GRU over slices",
    "lesion-cnn": "same CNN, max over slices",
}
N_SITES = 3


def prepare(work: Path, seed: int, scale: float, difficulty: float) -> tuple[Path, Path]:
    """Three training sites and one unseen test site (reused when already written)."""
    root = work / f"data-{seed}-{scale:g}-{difficulty:g}"
    sites, test = root / "sites", root / "test"
    if not (test / "series_labels.csv").is_file():
        shutil.rmtree(root, ignore_errors=True)
        generate_sites(
            root / "all", N_SITES + 1, seed=seed, task="series", scale=scale, difficulty=difficulty
        )
        sites.mkdir(parents=True)
        for k in range(1, N_SITES + 1):
            (root / "all" / f"site-{k}").rename(sites / f"site-{k}")
        (root / "all" / f"site-{N_SITES + 1}").rename(test)
    return sites, test


def run_model(model: str, args: argparse.Namespace, sites: Path, test: Path) -> dict[str, Any]:
    """Train `model` federated on `sites`, then score the final global model on `test`."""
    out = args.work / f"run-{model}"
    shutil.rmtree(out, ignore_errors=True)
    options = {
        "task": "series",
        "model": model,
        "num-server-rounds": args.rounds,
        "local-epochs": args.local_epochs,
        "batch-size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "min-sites": N_SITES,
        "sim-data-root": str(sites),
        "out-dir": str(out),
        "device": "cpu",
    }
    run = RunConfig.from_mapping(options)
    started = time.monotonic()
    record = run_simulation_job(SimulationOptions(run, N_SITES, sites))
    wall = time.monotonic() - started
    if record["status"] != "completed":
        raise SystemExit(f"{model}: run {record['status']}: {record.get('error')}")
    task = get_task(run)
    network = task.build_model()
    final = load_checkpoint(out / "checkpoints" / f"round-{args.rounds}.npz")
    task.set_weights(network, list(final.state.values()))
    held_out = SiteData("test", [], task.labelled_dataset(test))  # type: ignore[attr-defined]
    settings = TrainSettings(1, args.batch_size, args.lr, args.seed, torch.device("cpu"))
    scores = task.evaluate(network, held_out, settings)
    last = record["rounds"][-1]
    return {
        "model": model,
        "test": {k: scores.metrics[k] for k in ("auc", "accuracy", "f1", "loss")},
        "test_series": scores.num_examples,
        "val_auc": last["evaluate"]["aggregated"].get("auc"),
        "round_s": [r.get("seconds") for r in record["rounds"]],
        "wall_s": wall,
    }


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table of both models, with the GRU's AUC against the baseline's."""
    lines = [
        "| model | test AUC | test ACC | test F1 | site val AUC (last round) | s / round "
        "| wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rounds = [s for s in r["round_s"] if s is not None]
        per_round = f"{sum(rounds) / len(rounds):.0f} s" if rounds else "-"
        lines.append(
            f"| `{r['model']}`: {MODELS[r['model']]} | {r['test']['auc']:.3f} | "
            f"{r['test']['accuracy']:.3f} | {r['test']['f1']:.3f} | {r['val_auc']:.3f} | "
            f"{per_round} | {r['wall_s']:.0f} s |"
        )
    by_model = {r["model"]: r["test"]["auc"] for r in results}
    if len(by_model) == 2:
        diff = by_model["cnn-gru"] - by_model["lesion-cnn"]
        lines.append(f"\nTest AUC cnn-gru minus max-over-slices baseline: **{diff:+.3f}**")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", type=float, default=1.0, help="size factor of the sites")
    parser.add_argument(
        "--difficulty", type=float, default=0.4, help="nodule size and vessel clutter, 0 to 1"
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--work", type=Path, default=Path("runs/bench-series-gru"))
    parser.add_argument("--result", type=Path, default=None, help="also write JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MEDFLEET_PROGRESS", "off")
    sites, test = prepare(args.work, args.seed, args.scale, args.difficulty)
    results = [run_model(model, args, sites, test) for model in args.models]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"\n{platform.node()} {os.cpu_count()} CPUs, torch {torch.__version__}, commit {commit}")
    print(
        f"{args.rounds} rounds x {args.local_epochs} local epochs, batch {args.batch_size}, "
        f"lr {args.lr}, seed {args.seed}, scale {args.scale}, difficulty {args.difficulty}"
    )
    print(table(results))
    if args.result:
        args.result.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
