"""BreastMNIST under DP: federated test AUC at epsilon about 1, 3, 8 and without DP.

Usage:
    python benchmarks/dp_breastmnist.py ../shared/data/medmnist/breastmnist.npz \
        [--rounds 20] [--local-epochs 2] [--epsilons 1,3,8] [--out runs/bench-dp]

The same 3 non-IID DICOM sites as benchmarks/breastmnist.py, the same FedAvg schedule for
every row; only `dp` changes. DP-SGD rows (example-level, Opacus at each site) pick the
noise that spends the target epsilon by the last round (`dp-target-epsilon`), at
delta 1e-5, per-example clipping norm 1. One site-level row (`dp = client`) shows what
site-level DP costs with only three sites. Each model is scored once on the official test
split (156 images). The no-DP row is the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from breastmnist import federated_scores, schedule, write_sites  # same sites, scoring

from shared.config import RunConfig


def federated(base: dict[str, Any], out: Path, sites_dir: Path, test_dir: Path, **dp: Any) -> dict:
    run = RunConfig.from_mapping({**base, "out-dir": str(out), **dp})
    record, metrics, seconds = federated_scores(run, sites_dir, test_dir)
    privacy = record.get("privacy") or {}
    return {
        "dp": dp,
        "auc": metrics["auc"],
        "accuracy": metrics["accuracy"],
        "epsilon": privacy.get("epsilon"),
        "per_site": privacy.get("per_site"),
        "noise": privacy.get("noise_multiplier"),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("npz", type=Path, help="breastmnist.npz")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--epsilons", default="1,3,8")
    parser.add_argument("--client-epsilon", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-dp"))
    args = parser.parse_args()
    import flwr.common.logger  # noqa: F401  (sets Flower's level on import; override after)

    logging.getLogger("flwr").setLevel(logging.WARNING)
    out = args.out.resolve()
    sites_dir, test_dir = write_sites(args.npz, out / "data", args.seed)
    base = schedule(args.rounds, args.local_epochs, args.seed, sites_dir)
    rows = [("no DP", federated(base, out / "none", sites_dir, test_dir))]
    for eps in [float(e) for e in args.epsilons.split(",") if e]:
        dp = {"dp": "dp-sgd", "dp-target-epsilon": eps}
        rows.append(
            (
                f"DP-SGD, target epsilon {eps:g}",
                federated(base, out / f"sgd-{eps:g}", sites_dir, test_dir, **dp),
            )
        )
    if args.client_epsilon > 0:
        dp = {"dp": "client", "dp-target-epsilon": args.client_epsilon}
        name = f"site-level DP (dp = client), target epsilon {args.client_epsilon:g}"
        rows.append((name, federated(base, out / "client", sites_dir, test_dir, **dp)))
    baseline = rows[0][1]["auc"]
    print(
        f"\nBreastMNIST test split (156 images); FedAvg, 3 non-IID sites, {args.rounds} rounds "
        f"x {args.local_epochs} local epochs; delta 1e-5; {os.cpu_count()} CPU cores, no GPU"
    )
    print("| run | epsilon spent | test AUC | AUC / no-DP AUC | test ACC | wall time |")
    print("|---|---|---|---|---|---|")
    for name, row in rows:
        eps = "-" if row["epsilon"] is None else f"{row['epsilon']:.2f}"
        print(
            f"| {name} | {eps} | {row['auc']:.3f} | {row['auc'] / baseline:.3f} | "
            f"{row['accuracy']:.3f} | {row['seconds']:.0f} s |"
        )
    (out / "result.json").write_text(
        json.dumps({"rows": rows, "args": vars(args)}, indent=2, default=str)
    )


if __name__ == "__main__":
    main()
