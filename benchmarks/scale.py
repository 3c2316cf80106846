"""Scale: simulation round time and peak memory at 3, 10, 30 and 100 virtual sites.

Usage:
    python benchmarks/scale.py [--sites 3 10 30 100] [--rounds 4] [--scale 0.1]

Every site is a small synthetic lesion site, ``--scale`` of the demo's size (about 12
images; the generator makes up to 64 distinct sites, and sites beyond are copies of them
in folders of their own), and trains the classification task's LesionCNN at 32 px for
one local epoch, so the numbers show how MedFleet's simulation grows with the number of
sites, not training.
Sites run in as many Ray actors as there are cores; each actor keeps the prepared data of
at most 8 sites (`client/data_cache.py`), so memory is bounded and, beyond 16 sites, a
site's images are decoded again each round. Peak memory is the largest sum of resident
memory over the benchmark's process tree (driver, Ray's processes and actors), sampled
every 0.2 s. The baseline is the 3-site run of the same call: "per site" divides a round
by its number of sites, and the ratio compares that with the 3-site run's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.config import RunConfig  # noqa: E402
from simulations.runner import SimulationOptions, run_simulation_job  # noqa: E402
from simulations.synth import generate_sites  # noqa: E402
from simulations.synth.sites import MAX_SITES  # noqa: E402


class PeakMemory:
    """Samples the resident memory of this process and all its descendants."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total, single = 0, 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                single = max(single, rss)
            self.peak_total = max(self.peak_total, total)
            self.peak_single = max(self.peak_single, single)
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_sites(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = work / f"data-{n}"
    if not (data / f"site-{n}").is_dir():
        shutil.rmtree(data, ignore_errors=True)
        generate_sites(data, n_sites=min(n, MAX_SITES), seed=42, scale=args.scale)
        # The generator draws at most MAX_SITES distinct sites; further ones are copies
        # (own folders, so each is indexed, decoded and cached as a site of its own).
        for k in range(MAX_SITES + 1, n + 1):
            shutil.copytree(data / f"site-{(k - 1) % MAX_SITES + 1}", data / f"site-{k}")
    run = RunConfig.from_mapping(
        {
            "num-server-rounds": args.rounds,
            "local-epochs": 1,
            "image-size": 32,
            "min-sites": n,
            "device": "cpu",
            "seed": 42,
            "sim-data-root": str(data),
            "out-dir": str(work / f"run-{n}"),
        }
    )
    started = time.monotonic()
    with PeakMemory() as memory:
        record = run_simulation_job(SimulationOptions(run, n, data))
    wall = time.monotonic() - started
    if record.get("status") != "completed":
        raise SystemExit(f"the {n}-site run did not complete; see its log")
    rounds = [float(r["seconds"]) for r in record["rounds"]]
    steady = statistics.median(rounds[1:]) if len(rounds) > 1 else rounds[0]
    return {
        "sites": n,
        "rounds_s": rounds,
        "steady_round_s": steady,
        "per_site_s": steady / n,
        "first_round_s": rounds[0],
        "wall_s": wall,
        "peak_rss_total_mb": memory.peak_total / 2**20,
        "peak_rss_process_mb": memory.peak_single / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[3, 10, 30, 100])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.1, help="synthetic site size factor")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-scale"))
    args = parser.parse_args(argv)
    import flwr.common.logger  # noqa: F401  (sets Flower's level on import; override after)

    logging.getLogger("flwr").setLevel(logging.WARNING)
    work = args.work.resolve()
    rows = [run_sites(n, args, work) for n in args.sites]
    base = rows[0]["per_site_s"]
    print(
        f"\n{args.rounds} rounds, 1 local epoch, LesionCNN at 32 px, about "
        f"{round(120 * args.scale)} images per site; {os.cpu_count()} CPU cores"
    )
    print(
        "| sites | round (median, 2..R) | per site | per site vs "
        f"{rows[0]['sites']} sites | first round | peak memory (all processes) | "
        "largest process |\n|---|---|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['sites']} | {row['steady_round_s']:.2f} s | {row['per_site_s']:.3f} s | "
            f"{row['per_site_s'] / base:.2f}x | {row['first_round_s']:.1f} s | "
            f"{row['peak_rss_total_mb']:.0f} MB | {row['peak_rss_process_mb']:.0f} MB |"
        )
    (work / "scale.json").write_text(
        json.dumps({"rows": rows, "args": vars(args)}, indent=2, default=str)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
