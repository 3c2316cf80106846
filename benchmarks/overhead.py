"""Framework overhead: a MedFleet federated round against a plain PyTorch loop doing the same work.

Usage:
    python benchmarks/overhead.py [--sites 3] [--rounds 8] [--local-epochs 2] [--work DIR]

Both sides train the classification task's LesionCNN on the same synthetic DICOM sites
with the same epochs, batch size, optimiser, class-weighted loss, augmentation and
validation pass, with the same parallelism: MedFleet's simulation runs its sites in Ray
actors with one CPU each (as many at once as there are cores), and the baseline runs each
site's training in a pool of as many worker processes, one torch thread each, over images
decoded once into in-memory tensors. A round of the baseline is the wall time of training
and validating every site once; a MedFleet round is what its run record measures from the
training request to the last validation reply (aggregation and checkpoint included).
Steady state is the median from round 3 on; start-up (process start to round 1) and the
first round are reported apart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.config import RunConfig  # noqa: E402
from shared.tasks import get_task  # noqa: E402

_SITES: dict[int, dict[str, torch.Tensor]] = {}


def run_config(args: argparse.Namespace, data: Path, out: Path) -> RunConfig:
    return RunConfig.from_mapping(
        {
            "num-server-rounds": args.rounds,
            "local-epochs": args.local_epochs,
            "min-sites": args.sites,
            "device": "cpu",
            "seed": 42,
            "sim-data-root": str(data),
            "out-dir": str(out),
        }
    )


def medfleet_rounds(run: RunConfig, sites: int, data: Path) -> tuple[list[float], float]:
    """Per-round seconds of a real simulation, and the seconds before round 1."""
    from simulations.runner import SimulationOptions, run_simulation_job

    started = time.monotonic()
    record = run_simulation_job(SimulationOptions(run, sites, data))
    wall = time.monotonic() - started
    rounds = [float(r["seconds"]) for r in record["rounds"]]
    return rounds, wall - sum(rounds)


def decode_sites(run: RunConfig, data: Path, sites: int) -> list[dict[str, torch.Tensor]]:
    """Every site's train and val images, decoded once by the task's own reader."""
    task = get_task(run)
    out = []
    for k in range(1, sites + 1):
        site = task.load_site(data / f"site-{k}")
        arrays = {}
        for split in ("train", "val"):
            # The deterministic (evaluation) transforms: the loop below augments by itself.
            dataset = task.make_dataset(getattr(site, split).data, train=False)  # type: ignore[attr-defined]
            items = [dataset[i] for i in range(len(dataset))]
            arrays[f"{split}_x"] = torch.stack([torch.as_tensor(i["image"]) for i in items])
            arrays[f"{split}_y"] = torch.as_tensor([int(i["label"]) for i in items])
        arrays["weights"] = torch.as_tensor(site.extras["class_weights"], dtype=torch.float32)
        out.append(arrays)
    return out


def _init_worker(path: str) -> None:
    torch.set_num_threads(1)
    for k, site in enumerate(torch.load(path)):
        _SITES[k] = site


def _plain_site_round(job: tuple[int, dict[str, torch.Tensor], int, int, float, int]) -> float:
    """Train one site for `epochs` like the task does, then validate; returns val loss."""
    from shared.models import LesionCNN

    k, state, epochs, batch_size, lr, seed = job
    site = _SITES[k]
    model = LesionCNN()
    model.load_state_dict(state)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    x_all, y_all, weights = site["train_x"], site["train_y"], site["weights"]
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x = x_all[idx]
            flip = torch.rand(len(x), 2, generator=generator) < 0.5
            x = torch.where(flip[:, 0, None, None, None], x.flip(-2), x)
            x = torch.where(flip[:, 1, None, None, None], x.flip(-1), x)
            noisy = torch.rand(len(x), generator=generator) < 0.3
            x = x + noisy[:, None, None, None] * 0.02 * torch.randn(x.shape, generator=generator)
            loss = F.cross_entropy(model(x), y_all[idx], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = torch.cat(
            [model(site["val_x"][i : i + 64]) for i in range(0, len(site["val_x"]), 64)]
        )
        return float(F.cross_entropy(logits, site["val_y"]))


def plain_rounds(
    run: RunConfig, decoded: list[dict[str, torch.Tensor]], rounds: int, workers: int, work: Path
) -> list[float]:
    """Per-round seconds of the plain PyTorch loop over in-memory tensors."""
    import multiprocessing as mp

    from shared.models import LesionCNN

    path = work / "decoded.pt"
    torch.save(decoded, path)
    torch.manual_seed(run.seed)
    state = LesionCNN().state_dict()
    out = []
    with mp.get_context("spawn").Pool(workers, _init_worker, (str(path),)) as pool:
        for r in range(rounds):
            jobs = [
                (k, state, run.local_epochs, run.batch_size, run.lr, run.seed + r)
                for k in range(len(decoded))
            ]
            started = time.monotonic()
            pool.map(_plain_site_round, jobs, chunksize=1)
            out.append(time.monotonic() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="synthetic site size factor")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-overhead"))
    args = parser.parse_args(argv)
    import flwr.common.logger  # noqa: F401  (sets Flower's level on import; override after)

    logging.getLogger("flwr").setLevel(logging.WARNING)
    from simulations.synth import generate_sites

    work = args.work.resolve()
    data = work / "data"
    if not (data / f"site-{args.sites}").is_dir():
        generate_sites(data, n_sites=args.sites, seed=42, scale=args.scale)
    run = run_config(args, data, work / "run")
    workers = min(os.cpu_count() or 1, args.sites)
    decoded = decode_sites(run, data, args.sites)
    # The baseline runs before and after MedFleet, so that a change in the machine's load
    # during the run weighs on both sides alike.
    before = plain_rounds(run, decoded, args.rounds, workers, work)
    fed, startup = medfleet_rounds(run, args.sites, data)
    after = plain_rounds(run, decoded, args.rounds, workers, work)
    plain = [min(a, b) for a, b in zip(before, after, strict=True)]
    steady_fed = statistics.median(fed[2:])
    steady_plain = statistics.median(before[2:] + after[2:])
    print(
        f"\n{args.sites} sites, {args.local_epochs} local epochs, {workers} at once, one torch "
        f"thread each; {os.cpu_count()} CPU cores"
    )
    print("| | MedFleet (simulation) | plain PyTorch | ratio |\n|---|---|---|---|")
    print(
        f"| steady-state round (median, rounds 3-{args.rounds}) | {steady_fed:.2f} s | "
        f"{steady_plain:.2f} s | {steady_fed / steady_plain:.2f}x |"
    )
    print(f"| first round | {fed[0]:.2f} s | {plain[0]:.2f} s | |")
    print(f"| start-up to round 1 | {startup:.1f} s | | |")
    result = {
        "medfleet_rounds": fed,
        "plain_rounds_before": before,
        "plain_rounds_after": after,
        "startup_s": startup,
        "ratio": steady_fed / steady_plain,
        "args": vars(args),
    }
    (work / "overhead.json").write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
