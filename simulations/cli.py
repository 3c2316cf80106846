"""`medfleet sim`: a local multi-site federated run on one machine."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the `sim` sub-command."""
    parser = subparsers.add_parser(
        "sim",
        help="simulate several hospital sites training one model on this machine",
        description=(
            "Run a federated training with virtual hospital sites under Flower's simulation "
            "engine. Each site trains on its own folder of DICOM data; synthetic sites are "
            "generated when --data holds none."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    # Flags default to None: only a flag the user typed overrides --set (see _run_mapping).
    parser.add_argument(
        "--task", default=None, help="classification, segmentation, gan, detection or series"
    )
    parser.add_argument("--sites", type=int, default=None, help="number of hospital sites (3)")
    parser.add_argument("--rounds", type=int, default=None, help="federated rounds (5)")
    parser.add_argument("--local-epochs", type=int, default=None, help="local epochs per round (1)")
    parser.add_argument("--batch-size", type=int, default=None, help="(16)")
    parser.add_argument("--lr", type=float, default=None, help="local learning rate (0.001)")
    parser.add_argument("--seed", type=int, default=None, help="(42)")
    parser.add_argument(
        "--strategy", default=None, help="aggregation rule, e.g. fedavg, fedprox, krum (fedavg)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="the sites' data directory, one sub-folder per site "
        "(generated if absent; default OUT/data)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/sim"), help="output directory of the run"
    )
    parser.add_argument(
        "--device", default=None, help="auto (CUDA when present), cpu or cuda[:N] (auto)"
    )
    parser.add_argument(
        "--secagg", action="store_true", default=None, help="mask updates with SecAgg+"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue an interrupted run from its last completed round",
    )
    parser.add_argument(
        "--evaluate-only",
        type=Path,
        default=None,
        metavar="MODEL",
        help="train nothing: score a model file (or a run folder's final model) at every "
        "site; its task options and seed are taken from the file",
    )
    parser.add_argument(
        "--synth-scale", type=float, default=1.0, help="size factor of generated synthetic sites"
    )
    parser.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any run-config key (e.g. image-size=64); repeatable. Precedence: a flag you "
        "type > --set > the declared defaults",
    )
    parser.set_defaults(func=_run)


#: Flag -> run-config key; each flag overrides --set only when given.
FLAG_KEYS = {
    "task": "task",
    "rounds": "num-server-rounds",
    "local_epochs": "local-epochs",
    "batch_size": "batch-size",
    "lr": "lr",
    "seed": "seed",
    "strategy": "strategy",
    "device": "device",
    "secagg": "secagg",
}


def run_mapping(args: argparse.Namespace, data: Path, out: Path, sites: int) -> dict[str, Any]:
    """The run config of `medfleet sim`: derived defaults < --set < flags typed.

    Every site takes part in every round unless `min-sites` says otherwise, and SecAgg+
    shares keys with every other site by default. With `--evaluate-only MODEL` the
    model file's task options and seed are derived defaults too.
    """
    from shared.config import parse_overrides

    derived: dict[str, Any] = {
        "min-sites": sites,
        "secagg-num-shares": sites,
        "secagg-threshold": max(2, sites - 1),
    }
    if args.evaluate_only is not None:
        from shared.bundle import evaluation_run_config

        derived.update(evaluation_run_config(args.evaluate_only))
    paths = {"sim-data-root": str(data), "out-dir": str(out)}
    return {**derived, **parse_overrides(args.options), **typed_flags(args), **paths}


def typed_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The run-config values of the flags the user typed (the others are None)."""
    flags = {key: getattr(args, name) for name, key in FLAG_KEYS.items()}
    return {key: value for key, value in flags.items() if value is not None}


def _run(args: argparse.Namespace) -> int:
    from shared.bundle import check_evaluated_model
    from shared.config import RunConfig
    from shared.errors import ConfigError
    from simulations.runner import SimulationOptions, run_simulation_job

    if args.resume is not None and args.evaluate_only is not None:
        raise ConfigError("--resume and --evaluate-only do not go together: give one of them")
    if args.resume is not None:
        mapping, data, out, sites = _resumed_mapping(args)
    else:
        out = args.out.resolve()
        data = (args.data or out / "data").resolve()
        sites = 3 if args.sites is None else args.sites
        mapping = run_mapping(args, data, out, sites)
    if sites < 1:
        raise ConfigError(f"--sites must be at least 1, got {sites}")
    run = RunConfig.from_mapping(mapping)
    check_evaluated_model(run)
    if not args.verbose:
        # MedFleet prints its own per-round table; Flower's round log and history dump
        # would bury it. Flower's errors still show. Flower sets its logger's level when
        # first imported, so import it before changing the level.
        import flwr.common.logger  # noqa: F401

        logging.getLogger("flwr").setLevel(logging.ERROR)
    started = time.monotonic()
    record = run_simulation_job(SimulationOptions(run, sites, data, args.synth_scale))
    _print_summary(record, data, out, time.monotonic() - started)
    return 0 if record.get("status") == "completed" else 1


def _resumed_mapping(args: argparse.Namespace) -> tuple[dict[str, Any], Path, Path, int]:
    """`--resume`: the interrupted run's own config, with only what was typed now on top
    (e.g. --rounds 10 to extend it); its data folder, run folder and number of sites."""
    from server.resume import stored_config
    from shared.config import parse_overrides, site_folders

    out = args.resume.resolve()
    stored = stored_config(out)
    data = Path(str(stored["sim-data-root"]))
    typed = typed_flags(args)
    mapping = {**stored, **parse_overrides(args.options), **typed, "resume-from": str(out)}
    sites = len(site_folders(data)) if args.sites is None else args.sites
    return mapping, data, out, sites


def _print_summary(record: dict[str, Any], data: Path, out: Path, seconds: float) -> None:
    from shared.metrics import is_count_key

    rounds = record.get("rounds", [])
    last = rounds[-1] if rounds else {}
    final = (last.get("evaluate") or {}).get("aggregated", {})
    shown = ", ".join(
        f"{k}={v:.3f}" for k, v in final.items() if isinstance(v, float) and not is_count_key(k)
    )
    print()
    status, task = record.get("status"), record.get("task")
    print(f"Run {status} in {seconds:.0f} s: {len(rounds)} rounds, task {task}")
    if rounds:
        print(f"  final validation (all sites, weighted): {shown or 'n/a'}")
    print(f"  site data           {data}")
    for line in _data_lines(rounds):
        print(f"    {line}")
    print(f"  run record          {out / 'run.json'}")
    cross = record.get("cross_site") or {}
    if cross:
        size = f"{len(cross['models'])} models x {len(cross['sites'])} sites"
        print(f"  cross-site table    run.json 'cross_site' ({size}, {cross['main_metric']})")
    if (out / "report.html").is_file():
        print(f"  run report          {out / 'report.html'}")
    if not rounds:
        return
    print(f"  round checkpoints   {out / 'checkpoints'}")
    print(f"  final global model  {out / 'global_model.pt'}")
    extra = sorted(
        {k for r in rounds for k in r.get("files", {}) if k not in ("checkpoint", "global_model")}
    )
    for kind in extra:
        print(f"  {kind:<19} {Path(rounds[-1]['files'].get(kind, '')).parent}")


def _data_lines(rounds: list[dict[str, Any]]) -> list[str]:
    """Each site's data report as its first fit reply carried it (counts only)."""
    fit = (rounds[0].get("fit") or {}) if rounds else {}
    lines = []
    for site, metrics in sorted(fit.get("sites", {}).items()):
        usable, skipped = metrics.get("data_usable"), metrics.get("data_skipped")
        if usable is None:
            continue
        reasons = ", ".join(
            f"{k.removeprefix('data_skipped_').replace('_', ' ')} {int(v)}"
            for k, v in sorted(metrics.items())
            if k.startswith("data_skipped_") and v
        )
        detail = f" ({reasons}; `medfleet data check --verbose` at the site)" if reasons else ""
        counts = f"{int(usable)} usable images, {int(skipped or 0)} files skipped"
        lines.append(f"{site}: {counts}{detail}")
    return lines
