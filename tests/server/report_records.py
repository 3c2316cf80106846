"""Hand-made run folders (run.json and the server's files) of each task, for report tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared.metrics import classification_metrics, pooled_classification_metrics, weighted_mean
from shared.tasks.gan_grid import save_sample_grid

SITES = ("site-a", "site-b")

#: Per-site validation labels and probabilities of the classification record's last round.
LAST_ROUND = {
    "site-a": (
        np.array([1, 1, 1, 0, 0, 0, 0, 0]),
        np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.1, 0.4]),
    ),
    "site-b": (np.array([1, 0, 0, 1]), np.array([0.7, 0.35, 0.55, 0.45])),
}


def _config(task: str, out_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "task": task,
        "num-server-rounds": 2,
        "strategy": "fedavg",
        "out-dir": str(out_dir),
        "dp": "off",
        "secagg": False,
        **extra,
    }


def _stage(per_site: dict[str, dict[str, Any]], pool: Callable[..., dict[str, float]]) -> dict:
    results = [(int(m.get("num_examples_val", 10)), m) for m in per_site.values()]
    return {"sites": per_site, "aggregated": pool(results), "failures": 0}


def _round(number: int, fit: dict, evaluate: dict | None, files: dict | None = None) -> dict:
    return {
        "round": number,
        "fit": fit,
        "evaluate": evaluate,
        "files": files or {},
        "dropped": [],
        "refused": [],
        "errors": [],
        "seconds": 1.5,
    }


def _record(task: str, out_dir: Path, rounds: list[dict], **config: Any) -> dict[str, Any]:
    return {
        "medfleet_version": "0.1.0",
        "task": task,
        "config": _config(task, out_dir, **config),
        "started": "2026-01-01T10:00:00+0000",
        "finished": "2026-01-01T10:05:00+0000",
        "status": "completed",
        "resumes": [],
        "rounds": rounds,
        "final_model": str(out_dir / "global_model.pt"),
    }


def _fit(loss: float) -> dict:
    per_site = {s: {"train_loss": loss + i / 10, "site": s} for i, s in enumerate(SITES)}
    return _stage(per_site, weighted_mean)


def classification(out_dir: Path) -> dict[str, Any]:
    """Two rounds at two sites; the last round's scores come from `LAST_ROUND`."""
    rng = np.random.default_rng(0)
    rounds = []
    for number in (1, 2):
        per_site = {}
        for site, (labels, probs) in LAST_ROUND.items():
            scores = probs if number == 2 else rng.random(len(labels))
            metrics = classification_metrics(labels, scores)
            per_site[site] = {**metrics, "loss": 0.7 / number, "site": site,
                              "num_examples_val": len(labels)}  # fmt: skip
        rounds.append(_round(number, _fit(0.8 / number), _stage(per_site, _pooled)))
    return _record("classification", out_dir, rounds)


def _pooled(results: list) -> dict[str, float]:
    merged = pooled_classification_metrics(results)
    merged["num_examples_val"] = sum(n for n, _ in results)
    return merged


def segmentation(out_dir: Path) -> dict[str, Any]:
    """Two rounds at two sites with Dice and HD95 of classes 1 and 2."""
    rounds = []
    for number in (1, 2):
        per_site = {}
        for i, site in enumerate(SITES):
            dice = [0.5 + 0.1 * number + 0.05 * i, 0.4 + 0.1 * number]
            hd95 = [9.0 / number, 12.0 / number + i]
            per_site[site] = {
                "loss": 0.9 / number, "dice": float(np.mean(dice)), "hd95": float(np.mean(hd95)),
                "dice_1": dice[0], "dice_2": dice[1], "hd95_1": hd95[0], "hd95_2": hd95[1],
                "site": site, "num_examples_val": 3 + i,
            }  # fmt: skip
        rounds.append(_round(number, _fit(1.0 / number), _stage(per_site, weighted_mean)))
    return _record("segmentation", out_dir, rounds, **{"seg-class-names": "liver,tumour"})


def gan(out_dir: Path) -> dict[str, Any]:
    """Three rounds at two sites, each with a sample grid PNG in ``samples/``."""
    rng = np.random.default_rng(0)
    rounds = []
    for number in (1, 2, 3):
        grid = save_sample_grid(
            rng.uniform(-1, 1, (4, 8, 8)), out_dir / "samples" / f"round-{number}.png"
        )
        per_site = {
            s: {"g_loss": 1.0 / number, "d_loss": 0.6, "fd": 40.0 / number, "fd_real": 5.0,
                "mmd": 0.3 / number, "site": s, "num_examples_val": 8}
            for s in SITES
        }  # fmt: skip
        fit = _stage(
            {s: {"train_g_loss": 1.2, "train_d_loss": 0.7, "site": s} for s in SITES},
            weighted_mean,
        )
        rounds.append(_round(number, fit, _stage(per_site, weighted_mean), {"samples": str(grid)}))
    return _record("gan", out_dir, rounds)


def write(run_dir: Path, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Write the record `build` makes into `run_dir/run.json`; return it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = build(run_dir)
    (run_dir / "run.json").write_text(json.dumps(record, indent=2))
    return record
