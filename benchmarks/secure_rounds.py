"""Benchmark: TLS + SecAgg+ rounds against plain TLS rounds in a real deployment (issue 10).

    .venv/bin/python benchmarks/secure_rounds.py [--sites 3] [--rounds 5]

Three deployments on 127.0.0.1 of the same model (LesionCNN at 32 px) and the same
synthetic sites, one after the other, each started as the README starts one
(`medfleet server start`, one `medfleet site start` per site, `medfleet server run`):

- ``tls``: TLS and site authentication, SecAgg+ off (sites `--allow-plain`, the run
  `--no-secagg`): the baseline;
- ``secagg``: TLS, site authentication and SecAgg+, MedFleet's defaults;
- ``secagg, Flower's defaults``: the same, but each ClientApp task a fresh
  `flwr-clientapp` process and the SuperNode's own 3 s idle wait (`--clientapp-start
  spawn --poll-interval 3`), to show what those two defaults buy.

Per deployment: the median round time over rounds 2..R (round 1 pays one-off start-up),
its ratio to ``tls``, and the bytes each site uploads and downloads per round through the
public address (nginx's access log), next to the model's size.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The deployment tests' federation (provision, start by PID, stop everything by PID).
from tests.deployment import harness  # noqa: E402
from tests.deployment.fleet import Fleet  # noqa: E402

HEADER = "| deployment | round (median, 2..R) | vs tls | up / site / round | down / site / round |"
_FLEET_ROUTE = re.compile(r'"POST /v1/fleet/\S+ HTTP/1\.1" 200 (\d+) (\d+)')


@dataclass(frozen=True)
class Setup:
    name: str
    site_options: tuple[str, ...]
    run_options: tuple[str, ...]


SETUPS = (
    Setup("tls", ("--allow-plain",), ("--no-secagg",)),
    Setup("secagg", (), ()),
    Setup("secagg, Flower's defaults", ("--clientapp-start", "spawn", "--poll-interval", "3"), ()),
    Setup("secagg-poll, idle poll 0.2 s", ("--poll-interval", "0.2"), ()),
)


@dataclass(frozen=True)
class Measured:
    round_seconds: list[float]
    upload: float  # bytes per site per round
    download: float


def _traffic(access_log: Path, sites: int, rounds: int) -> tuple[float, float]:
    """Request and response bytes of the sites' Fleet calls, per site per round."""
    up = down = 0
    for match in _FLEET_ROUTE.finditer(access_log.read_text()):
        down += int(match[1])
        up += int(match[2])
    return up / sites / rounds, down / sites / rounds


def measure(setup: Setup, root: Path, sites: Sequence[str], rounds: int) -> Measured:
    """One deployment: start it, run `rounds` rounds, read run.json and the proxy's log."""
    root.mkdir(parents=True)
    fleet = Fleet.create(root, sites, site_options=setup.site_options)
    try:
        fleet.start()
        out = root / "run"
        args = fleet.run_args(out, "--rounds", str(rounds), *setup.run_options)
        done = fleet.cli(args, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"{setup.name}: server run failed:\n{done.stderr[-3000:]}")
        record = harness.read_json(out / "run.json")
        seconds = [float(r["seconds"]) for r in record["rounds"]]
        up, down = _traffic(fleet.server_state / "proxy" / "access.log", len(sites), rounds)
        return Measured(seconds, up, down)
    finally:
        fleet.close()


def _model_bytes() -> int:
    """Size of the model the fleets train (the tests' tiny schedule: 32 px)."""
    from shared.config import RunConfig
    from shared.tasks import get_task

    task = get_task(RunConfig.from_mapping({"image-size": 32}))
    return sum(a.nbytes for a in task.get_weights(task.build_model()))


def _key(setup: Setup) -> str:
    """The `--setups` name: tls, secagg, secagg-flower, secagg-poll."""
    head = setup.name.split(",")[0]
    return head + ("-flower" if "Flower" in setup.name else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--setups",
        nargs="+",
        choices=[_key(s) for s in SETUPS],
        default=None,
        help="which deployments to measure (default: all; tls is always the baseline)",
    )
    args = parser.parse_args(argv)
    chosen = [s for s in SETUPS if args.setups is None or _key(s) in {*args.setups, "tls"}]
    sites = tuple(f"site-{chr(ord('a') + i)}" for i in range(args.sites))
    results: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory(prefix="medfleet-secure-") as tmp:
        for i, setup in enumerate(chosen):
            started = time.monotonic()
            results[setup.name] = measure(setup, Path(tmp) / str(i), sites, args.rounds)
            rounds = ", ".join(f"{x:.1f}" for x in results[setup.name].round_seconds)
            print(f"{setup.name}: done in {time.monotonic() - started:.0f} s; rounds: {rounds} s",
                  flush=True)  # fmt: skip
    base = statistics.median(results["tls"].round_seconds[1:])
    model = _model_bytes()
    print(f"\n{args.sites} sites, {args.rounds} rounds, model {model / 1e6:.2f} MB (float32)\n")
    print(HEADER)
    print("|---|---|---|---|---|")
    for name, m in results.items():
        median = statistics.median(m.round_seconds[1:])
        print(
            f"| {name} | {median:.1f} s | {median / base:.2f}x | {m.upload / 1e6:.2f} MB "
            f"({m.upload / model:.1f}x model) | {m.download / 1e6:.2f} MB "
            f"({m.download / model:.1f}x model) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
