"""Convergence across unlike hospitals: central, each site alone, FedAvg, FedProx, FedAdam, FedBN.

Usage (one command; each dataset and method can be picked, the defaults run them all):
    python benchmarks/convergence.py --data ../shared/data \
        [--datasets breastmnist-label breastmnist-scanner ...] \
        [--methods central local fedavg fedprox fedadam fedbn scaffold fedavgm] [--work DIR]
        [--result FILE]

Datasets (3 sites each, every site written as DICOM and read through MedFleet's real path):
- ``breastmnist-label`` / ``pneumoniamnist-label``: the official training split dealt with a
  different share of each class per site (label skew); test: the official test split.
- ``breastmnist-scanner`` / ``pneumoniamnist-scanner``: classes dealt evenly, but each site's
  images pass through its own "scanner" (gamma, contrast, blur and noise); test: the official
  test split, each image through one of the three scanners in turn.
- ``synthetic``: the project's synthetic lesion sites (non-IID scanners and prevalence);
  test: a fourth synthetic site the federation never sees.
- ``hippocampus``: MSD Task04, 208 cases over 3 sites (DICOM MR + SEG); test: the 52 held-out
  cases of ``test_cases.txt``.

Every method trains the same network for the same number of epochs (rounds x local
epochs). Federated methods run the real ServerApp and ClientApps under Flower's simulation
engine; the test split scores each round's checkpoint (for reporting only: nothing is
tuned on it) so the table gives the rounds a method needs to reach 95 % of centralised.
FedBN's global model carries the average of the sites' normalisation layers; the sites'
own validation with their own layers is in the run record (``site val``).
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.checkpoint import load_checkpoint  # noqa: E402
from shared.config import RunConfig, parse_overrides  # noqa: E402
from shared.tasks import get_task  # noqa: E402
from shared.tasks.base import SiteData, Task, TrainSettings  # noqa: E402
from shared.tasks.classification import class_weights  # noqa: E402
from simulations.array_sites import split_non_iid, write_array_site  # noqa: E402
from simulations.runner import SimulationOptions, run_simulation_job  # noqa: E402

logger = logging.getLogger("medfleet.bench")

N_SITES = 3
DATASETS = (
    "breastmnist-label",
    "breastmnist-scanner",
    "pneumoniamnist-label",
    "pneumoniamnist-scanner",
    "synthetic",
    "hippocampus",
)
METHODS = ("central", "local", "fedavg", "fedprox", "fedadam", "fedbn", "scaffold", "fedavgm")
#: Each federated method's own options; `--set` overrides them (a sweep on validation).
FEDERATED = {
    "fedavg": {},
    # Server momentum at the full server step (Hsu et al., 2019): with 3 sites FedAvg moves
    # the model by the mean of their updates, a third of what pooled training's steps do.
    "fedavgm": {"server-lr": 1.0, "server-momentum": 0.9},
    "fedprox": {"proximal-mu": 0.01},
    "fedadam": {},
    "fedbn": {},
    "scaffold": {},
}
#: Published centralised test metric per dataset family (MedMNIST v2 Table 3, ResNet-18 (28);
#: nnU-Net for MSD Task04).
PUBLISHED = {"breastmnist": 0.901, "pneumoniamnist": 0.944, "hippocampus": 0.895}
#: Class shares per site for label skew: SHARES[c][s] of class c go to site s.
LABEL_SHARES = ((0.2, 0.35, 0.45), (0.5, 0.3, 0.2))


@dataclass
class Schedule:
    """Training settings of one dataset, the same for every method."""

    rounds: int
    local_epochs: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return self.rounds * self.local_epochs


SCHEDULES = {
    "breastmnist": Schedule(
        20,
        2,
        {"model": "resnet18", "image-size": 28, "batch-size": 32, "lr": 1e-3, "fedopt-tau": 1e-3},
    ),
    "pneumoniamnist": Schedule(10, 1, {"image-size": 32, "batch-size": 32, "lr": 1e-3}),
    "synthetic": Schedule(10, 2, {"image-size": 64, "lr": 1e-3}),
    "hippocampus": Schedule(
        3, 2, {"task": "segmentation", "batch-size": 4, "seg-samples-per-case": 2}
    ),
}


@dataclass
class Prepared:
    """A dataset written as sites, and its test split loaded as a SiteData."""

    name: str
    sites_dir: Path
    test: Callable[[Task], SiteData]
    metric: str


# --- scanners and splits -------------------------------------------------------------


def scanner(images: np.ndarray, kind: int, seed: int) -> np.ndarray:
    """Site `kind`'s acquisition look on uint8 images: gamma, contrast, blur and noise."""
    x = images.astype(np.float32) / 255.0
    rng = np.random.default_rng(seed + kind)
    if kind == 0:  # bright, high-contrast scanner
        x = x**0.5
    elif kind == 1:  # dark, low-contrast scanner
        x = 0.15 + 0.6 * x**1.8
    else:  # soft, noisy scanner: 3x3 box blur plus Gaussian noise
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        h, w = x.shape[1:]
        x = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
        x = x + rng.normal(0.0, 0.06, size=x.shape)
    return (np.clip(x, 0.0, 1.0) * 255).round().astype(np.uint8)


def prepare_medmnist(data: Path, dataset: str, work: Path, seed: int) -> Prepared:
    """Write a MedMNIST split as 3 DICOM sites and a DICOM test folder (reused if present)."""
    family, skew = dataset.split("-")
    npz = {"breastmnist": "breastmnist.npz", "pneumoniamnist": "pneumoniamnist_reduced_train.npz"}
    arrays = np.load(data / "medmnist" / npz[family])
    # BreastMNIST: 0 = malignant; MedFleet's class 1 is the finding (malignant, pneumonia).
    flip = family == "breastmnist"

    def labels(split: str) -> np.ndarray:
        y = arrays[f"{split}_labels"].reshape(-1).astype(int)
        return 1 - y if flip else y

    root = work / dataset
    sites_dir, test_dir = root / "sites", root / "test"
    modality = "US" if family == "breastmnist" else "DX"
    if not (test_dir / "labels.csv").is_file():
        shutil.rmtree(root, ignore_errors=True)
        train_x, train_y = arrays["train_images"], labels("train")
        if skew == "label":
            parts = split_non_iid(train_y, LABEL_SHARES, seed=seed)
        else:
            even = [(1 / N_SITES,) * N_SITES] * 2
            parts = split_non_iid(train_y, even, seed=seed)
        for k, idx in enumerate(parts):
            images = train_x[idx] if skew == "label" else scanner(train_x[idx], k, seed)
            write_array_site(images, train_y[idx], sites_dir / f"site-{k + 1}", f"S{k}", modality)
        test_x, test_y = arrays["test_images"], labels("test")
        if skew == "scanner":
            looks = np.arange(len(test_x)) % N_SITES
            test_x = np.concatenate([scanner(test_x[looks == k], k, seed + 99) for k in range(3)])
            test_y = np.concatenate([test_y[looks == k] for k in range(N_SITES)])
        write_array_site(test_x, test_y, test_dir, "TEST", modality)
    return Prepared(dataset, sites_dir, lambda task: _labelled_test(task, test_dir), "auc")


def prepare_synthetic(work: Path, seed: int) -> Prepared:
    """Three synthetic lesion sites and a fourth, unseen one as the test split."""
    from simulations.synth import generate_sites

    root = work / "synthetic"
    if not (root / "test" / "labels.csv").is_file():
        shutil.rmtree(root, ignore_errors=True)
        generate_sites(root / "all", n_sites=N_SITES + 1, seed=seed)
        (root / "sites").mkdir(parents=True)
        for k in range(1, N_SITES + 1):
            (root / "all" / f"site-{k}").rename(root / "sites" / f"site-{k}")
        (root / "all" / f"site-{N_SITES + 1}").rename(root / "test")
    test_dir = root / "test"
    return Prepared("synthetic", root / "sites", lambda task: _labelled_test(task, test_dir), "auc")


def prepare_hippocampus(data: Path, work: Path, seed: int) -> Prepared:
    """MSD Task04 as 3 DICOM sites; the 52 listed cases are the test split (NIfTI)."""
    from hippocampus_unet import held_out_data, prepare_sites

    source = data / "msd_task04_hippocampus"
    test_cases = set((source / "test_cases.txt").read_text().split())
    sites_dir = prepare_sites(source, work / "hippocampus", test_cases, seed)
    return Prepared(
        "hippocampus",
        sites_dir,
        lambda task: held_out_data(source, work / "hippocampus", test_cases),
        "dice",
    )


def _labelled_test(task: Task, test_dir: Path) -> SiteData:
    items = task.labelled_items(test_dir)  # type: ignore[attr-defined]
    return SiteData("test", train=[], val=task.make_dataset(items, train=False))  # type: ignore[attr-defined]


# --- methods ---------------------------------------------------------------------------


def run_config(
    prepared: Prepared,
    schedule: Schedule,
    seed: int,
    out: Path,
    defaults: dict[str, Any] | None = None,
    **extra: Any,
) -> RunConfig:
    return RunConfig.from_mapping(
        {
            **(defaults or {}),
            **schedule.options,
            **extra,
            "num-server-rounds": schedule.rounds,
            "local-epochs": schedule.local_epochs,
            "seed": seed,
            "min-sites": N_SITES,
            "device": "cpu",
            "sim-data-root": str(prepared.sites_dir),
            "out-dir": str(out),
        }
    )


def score(task: Task, model: torch.nn.Module, test: SiteData) -> dict[str, float]:
    settings = TrainSettings(1, 16, 0.0, 0, torch.device("cpu"))
    return task.evaluate(model, test, settings).metrics


def train_pooled(run: RunConfig, sites: list[Path], epochs: int) -> tuple[Task, torch.nn.Module]:
    """The same network trained on the pooled train splits of `sites` (one site: alone)."""
    task = get_task(run)
    datas = [task.load_site(s) for s in sites]
    extras = {}
    if run.task == "classification":
        labels = [int(item["label"]) for d in datas for item in d.train.data]
        extras["class_weights"] = class_weights(labels)
    pooled = SiteData("pooled", ConcatDataset([d.train for d in datas]), [], extras=extras)
    model = task.build_model()
    settings = TrainSettings.from_run(run, torch.device("cpu"), local_epochs=epochs, dp=None)
    task.train_round(model, pooled, settings)
    return task, model


def federated(run: RunConfig, prepared: Prepared, test: SiteData) -> dict[str, Any]:
    """One federated run; the test metric of every round's checkpoint and the site val."""
    started = time.monotonic()
    record = run_simulation_job(SimulationOptions(run, N_SITES, prepared.sites_dir))
    wall = time.monotonic() - started
    if record.get("status") != "completed":
        raise SystemExit(f"{run.strategy} on {prepared.name} did not complete; see its log")
    task = get_task(run)
    model = task.build_model()
    curve = []
    for entry in record["rounds"]:
        path = Path(run.out_dir) / "checkpoints" / f"round-{entry['round']}.npz"
        task.set_weights(model, list(load_checkpoint(path).state.values()))
        curve.append(score(task, model, test)[prepared.metric])
    final = score(task, model, test)
    site_val = record["rounds"][-1]["evaluate"]["aggregated"].get(prepared.metric)
    return {"test": final, "curve": curve, "site_val": site_val, "wall_s": wall}


def run_dataset(
    prepared: Prepared,
    methods: list[str],
    seed: int,
    work: Path,
    schedule: Schedule,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    metric = prepared.metric
    probe = run_config(prepared, schedule, seed, work / "unused")
    test = prepared.test(get_task(probe))
    sites = sorted(prepared.sites_dir.glob("site-*"))
    out: dict[str, Any] = {"schedule": vars(schedule) | {"epochs": schedule.epochs}}
    for method in methods:
        started = time.monotonic()
        if method == "central":
            task, model = train_pooled(probe, sites, schedule.epochs)
            out["central"] = {
                "test": score(task, model, test),
                "wall_s": time.monotonic() - started,
            }
        elif method == "local":
            alone = []
            for site in sites:
                task, model = train_pooled(probe, [site], schedule.epochs)
                alone.append(score(task, model, test)[metric])
            out["local"] = {"test": alone, "wall_s": time.monotonic() - started}
        else:
            run = run_config(
                prepared,
                schedule,
                seed,
                work / prepared.name / method,
                FEDERATED[method],
                strategy=method,
            )
            out[method] = federated(run, prepared, test)
        save(out)  # a long benchmark keeps every method it finished
        logger.info("%s %s: %.0f s", prepared.name, method, time.monotonic() - started)
        print(f"  {prepared.name} {method}: {_summary(out[method], metric)}", flush=True)
    return out


def _summary(entry: dict[str, Any], metric: str) -> str:
    test = entry["test"]
    if isinstance(test, list):
        return " / ".join(f"{v:.3f}" for v in test)
    return f"{test[metric]:.3f} ({entry['wall_s']:.0f} s)"


# --- report ----------------------------------------------------------------------------


def rounds_to(curve: list[float], target: float) -> int | None:
    """First round (1-based) whose test metric reaches `target`, None if never."""
    return next((i + 1 for i, v in enumerate(curve) if v >= target), None)


def table(name: str, result: dict[str, Any], metric: str) -> str:
    """Markdown table of one dataset: test metric, gap to central, rounds to 95 %."""
    central = result.get("central", {}).get("test", {}).get(metric)
    local = result.get("local", {}).get("test")
    lines = [
        f"**{name}** (test {metric.upper()}; {result['schedule']['rounds']} rounds x "
        f"{result['schedule']['local_epochs']} local epochs = {result['schedule']['epochs']} "
        "epochs for every row)",
        "",
        f"| method | test {metric} | minus central | rounds to 95 % of central | site val | "
        "beats every site alone | wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    if central is not None:
        lines.append(
            f"| centralised (pooled) | {central:.3f} | 0 | - | - | - | "
            f"{result['central']['wall_s']:.0f} s |"
        )
    if local is not None:
        cells = " / ".join(f"{v:.3f}" for v in local)
        lines.append(
            f"| each site alone (site 1 / 2 / 3) | {cells} | | | | | "
            f"{result['local']['wall_s']:.0f} s |"
        )
    for method in FEDERATED:
        if method not in result:
            continue
        entry = result[method]
        value = entry["test"][metric]
        gap = f"{value - central:+.3f}" if central is not None else "-"
        reach = rounds_to(entry["curve"], 0.95 * central) if central is not None else None
        beats = (
            "yes"
            if local is not None and value > max(local)
            else ("no" if local is not None else "-")
        )
        site_val = f"{entry['site_val']:.3f}" if entry.get("site_val") is not None else "-"
        lines.append(
            f"| {method} | {value:.3f} | {gap} | {reach if reach else 'not reached'} | "
            f"{site_val} | {beats} | {entry['wall_s']:.0f} s |"
        )
    family = name.split("-")[0]
    if family in PUBLISHED:
        lines.append(f"| published centralised reference | {PUBLISHED[family]:.3f} | | | | | |")
    return "\n".join(lines)


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=None, help="override every schedule")
    parser.add_argument("--local-epochs", type=int, default=None, help="override every schedule")
    parser.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run-config key over every schedule's options, e.g. model=lesion-cnn",
    )
    parser.add_argument("--work", type=Path, default=Path("runs/bench-convergence"))
    parser.add_argument("--result", type=Path, default=None)
    args = parser.parse_args(argv)
    import flwr.common.logger  # noqa: F401  (sets Flower's level on import; override after)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("flwr").setLevel(logging.WARNING)
    work = args.work.resolve()
    result_path = args.result or work / "convergence.json"
    results: dict[str, Any] = {}
    if result_path.is_file():  # a later call adds datasets or methods to the same file
        results = json.loads(result_path.read_text())
    results["machine"] = f"{os.cpu_count()} CPU cores, no GPU ({platform.machine()})"
    results["commit"] = _commit()
    for dataset in args.datasets:
        if dataset == "synthetic":
            prepared = prepare_synthetic(work, args.seed)
        elif dataset == "hippocampus":
            prepared = prepare_hippocampus(args.data.resolve(), work, args.seed)
        else:
            prepared = prepare_medmnist(args.data.resolve(), dataset, work, args.seed)
        schedule = SCHEDULES[dataset.split("-")[0]]
        extra = parse_overrides(args.options)
        schedule = Schedule(
            args.rounds or schedule.rounds,
            args.local_epochs or schedule.local_epochs,
            {**schedule.options, **extra},
        )
        entry = results.setdefault("datasets", {}).setdefault(dataset, {})
        entry["metric"] = prepared.metric

        def save(done: dict[str, Any], entry: dict[str, Any] = entry) -> None:
            entry.update(done)
            result_path.parent.mkdir(parents=True, exist_ok=True)
            result_path.write_text(json.dumps(results, indent=2, default=str))

        run_dataset(prepared, args.methods, args.seed, work, schedule, save)
    for dataset, entry in results.get("datasets", {}).items():
        print("\n" + table(dataset, entry, entry["metric"]))
    print(f"\nresult: {result_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
