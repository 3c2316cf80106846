"""Local training throughput on a GPU: MedFleet's training loop against a plain PyTorch AMP loop.

Usage (on a machine with CUDA; ``--device cpu`` runs the same comparison on the CPU):
    python benchmarks/gpu_throughput.py [--device cuda] [--model resnet18] [--epochs 5]

One synthetic site is read through MedFleet's real DICOM path; MedFleet trains it with the
classification task's `train_round` (the shared loop: AMP on CUDA, pinned batches,
non-blocking copies, augmentation per image). The baseline is a plain loop over the same
images held on the GPU as one tensor, with the same network, batch size, Adam, class
weights and `torch.autocast` (bf16 where the GPU has it, else fp16 with a GradScaler),
flips and noise done as tensor ops. Both run the same number of epochs after one warm-up
epoch; the table gives images per second and the ratio (goal: at least 0.9).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.config import RunConfig  # noqa: E402
from shared.tasks import get_task  # noqa: E402
from shared.tasks.base import TrainSettings  # noqa: E402
from shared.tasks.loop import autocast_dtype  # noqa: E402
from simulations.synth import generate_sites  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def medfleet(task, site, settings: TrainSettings, epochs: int) -> float:  # type: ignore[no-untyped-def]
    model = task.build_model()
    task.train_round(model, site, settings)  # warm-up epoch (cuDNN autotune, allocator)
    _sync(settings.device)
    started = time.perf_counter()
    for epoch in range(epochs):
        task.train_round(model, site, TrainSettings(**{**vars(settings), "server_round": epoch}))
    _sync(settings.device)
    return epochs * site.num_train / (time.perf_counter() - started)


def plain(task, site, settings: TrainSettings, epochs: int) -> float:  # type: ignore[no-untyped-def]
    device = settings.device
    x = torch.stack([torch.as_tensor(i["image"]) for i in site.train]).to(device)
    y = torch.as_tensor([int(i["label"]) for i in site.train], device=device)
    weights = torch.as_tensor(site.extras["class_weights"], dtype=torch.float32, device=device)
    model = task.build_model().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    dtype = autocast_dtype(device, True)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)

    def epoch() -> None:
        order = torch.randperm(len(x), device=device)
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            batch = x[idx]
            flip = torch.rand(len(idx), 2, device=device) < 0.5
            batch = torch.where(flip[:, 0, None, None, None], batch.flip(-2), batch)
            batch = torch.where(flip[:, 1, None, None, None], batch.flip(-1), batch)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(model(batch), y[idx], weight=weights)
            scaler.scale(loss.float()).backward()
            scaler.step(optimizer)
            scaler.update()

    epoch()
    _sync(device)
    started = time.perf_counter()
    for _ in range(epochs):
        epoch()
    _sync(device)
    return epochs * len(x) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="resnet18", choices=("lesion-cnn", "resnet18"))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=4.0, help="synthetic site size factor")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    run = RunConfig.from_mapping(
        {"model": args.model, "image-size": args.image_size, "batch-size": args.batch_size}
    )
    task = get_task(run)
    with tempfile.TemporaryDirectory(prefix="medfleet-gpu-") as tmp:
        generate_sites(Path(tmp), n_sites=1, seed=42, scale=args.scale)
        site = task.load_site(Path(tmp) / "site-1")
        settings = TrainSettings(1, args.batch_size, run.lr, run.seed, device)
        ours = medfleet(task, site, settings, args.epochs)
        theirs = plain(task, site, settings, args.epochs)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\n{args.model} at {args.image_size} px, batch {args.batch_size}, {site.num_train} "
        f"images x {args.epochs} epochs on {name}"
    )
    print("| loop | images / s | ratio |\n|---|---|---|")
    print(f"| MedFleet (`train_round`) | {ours:.0f} | {ours / theirs:.2f} |")
    print(f"| plain PyTorch AMP loop | {theirs:.0f} | 1.00 |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
