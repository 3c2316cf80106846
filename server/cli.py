"""`medfleet provision`, `medfleet server start` and `medfleet server run`."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]

log = logging.getLogger("medfleet.server")

DEFAULT_STATE = Path("~/.medfleet/server")


_FMT = argparse.ArgumentDefaultsHelpFormatter


def register(subparsers: Any) -> None:
    """Add the coordinator's sub-commands: `provision`, `server start`, `server run`."""
    _add_provision(subparsers)
    server = subparsers.add_parser("server", help="run the federation's central server")
    sub = server.add_subparsers(dest="server_command", metavar="ACTION", required=True)
    _add_start(sub)
    _add_run(sub)
    app_hash = sub.add_parser(
        "app-hash",
        help="print the FAB hash of the app `server run` submits (what sites approve)",
        formatter_class=_FMT,
    )
    app_hash.add_argument(
        "--app", type=Path, default=None, help="Flower app folder (default: this install)"
    )
    app_hash.set_defaults(func=_app_hash)


def _add_provision(subparsers: Any) -> None:
    fmt = _FMT
    prov = subparsers.add_parser(
        "provision", help="create the CA, the server kit and one kit per site", formatter_class=fmt
    )
    prov.add_argument("--federation", type=Path, required=True, help="federation TOML file")
    prov.add_argument("--out", type=Path, required=True, help="folder receiving the kits")
    prov.set_defaults(func=_provision)


def _add_start(sub: Any) -> None:
    fmt = _FMT
    start = sub.add_parser(
        "start",
        help="start the SuperLink (TLS + site auth) behind a proxy serving only the Fleet API",
        formatter_class=fmt,
    )
    start.add_argument("--kit", type=Path, required=True, help="the server kit folder")
    start.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="database, logs")
    start.add_argument("--host", default="0.0.0.0", help="interface of the public address")
    start.add_argument("--port", type=int, default=None, help="public port (default: from the kit)")
    start.add_argument(
        "--local-port",
        type=int,
        default=None,
        help="the SuperLink's own port on 127.0.0.1, behind the proxy (None: a free port)",
    )
    start.add_argument(
        "--no-proxy",
        action="store_true",
        help="development only: no nginx; the SuperLink serves every API, the Control API "
        "included, on --host:--port, so anyone reaching it can submit runs",
    )
    start.add_argument(
        "--status-interval", type=float, default=15.0, help="seconds between site checks"
    )
    start.set_defaults(func=_start)


def _add_run(sub: Any) -> None:
    fmt = _FMT
    run = sub.add_parser(
        "run", help="submit a training run to the started server", formatter_class=fmt
    )
    run.add_argument("--kit", type=Path, required=True, help="the server kit folder")
    run.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="as for `start`")
    # Flags default to None: only a flag the user typed overrides --set.
    run.add_argument(
        "--task", default=None, help="classification, segmentation, gan, detection or series"
    )
    run.add_argument("--rounds", type=int, default=None, help="federated rounds (5)")
    run.add_argument("--strategy", default=None, help="aggregation rule (fedavg)")
    run.add_argument("--min-sites", type=int, default=None, help="default: every site in the kit")
    run.add_argument(
        "--round-timeout", type=float, default=None, help="seconds a round may take (3600)"
    )
    run.add_argument(
        "--out-dir", type=Path, default=None, help="run outputs (default STATE/runs/<time>)"
    )
    run.add_argument(
        "--no-secagg", action="store_true", help="turn SecAgg+ off (sites refuse by default)"
    )
    run.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue an interrupted run (its out-dir) from its last completed round",
    )
    run.add_argument(
        "--evaluate-only",
        type=Path,
        default=None,
        metavar="MODEL",
        help="train nothing: score a model file on this server (or a run folder's final "
        "model) at every site; its task options and seed are taken from the file",
    )
    run.add_argument(
        "--app", type=Path, default=None, help="Flower app folder (default: this install)"
    )
    run.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any run-config key, e.g. local-epochs=2; repeatable. Precedence: a flag you "
        "type > --set > the app's declared defaults",
    )
    run.set_defaults(func=_run)


def _provision(args: argparse.Namespace) -> int:
    from server.provision import provision

    report = provision(args.federation, args.out)
    for path in report.created:
        print(f"created  {path}")
    for path in report.kept:
        print(f"kept     {path}")
    print(
        f"Ship each site folder to its site over a secure channel; keep {args.out / 'ca'} offline."
    )
    return 0


def _log_status(status: dict[str, str], last: dict[str, str]) -> None:
    if status and status != last:
        online = [s for s, st in status.items() if st == "online"]
        waiting = [f"{s} ({st})" for s, st in status.items() if st != "online"]
        log.info(
            "sites connected: %s; not connected: %s",
            ", ".join(online) or "none",
            ", ".join(waiting) or "none",
        )


def _start(args: argparse.Namespace) -> int:
    from server.launcher import ServerKit, SiteStatus, register_sites, start_server
    from shared.process import exit_on_sigterm

    srv = ServerKit.load(args.kit)
    state_dir = args.state_dir.expanduser().resolve()
    port = args.port or srv.port
    if args.no_proxy:
        log.warning("--no-proxy: the Control API is open to anyone who reaches port %d", port)
    exit_on_sigterm()
    server = start_server(srv, state_dir, args.host, port, args.local_port, not args.no_proxy)
    try:
        node_ids = register_sites(srv, state_dir / "flwr-home", state_dir)
        front = f"proxy pid {server.proxy.pid} (Fleet API only)" if server.proxy else "no proxy"
        log.info(
            "SuperLink pid %d serving on %s:%d through %s; Control API on 127.0.0.1:%d; log: %s",
            server.superlink.pid,
            args.host,
            port,
            front,
            server.local_port,
            state_dir / "superlink.log",
        )
        last: dict[str, str] = {}
        site_status = SiteStatus(state_dir / "flwr-home", node_ids)
        while (ended := server.exited()) is None:
            status = site_status()
            _log_status(status, last)
            last = status or last
            time.sleep(args.status_interval)
        log.error("%s; see superlink.log and proxy/error.log in %s", ended, state_dir)
        return 1
    finally:
        server.stop()


def _run(args: argparse.Namespace) -> int:
    from server.launcher import ServerKit
    from server.submit import default_app_dir, submit_run

    srv = ServerKit.load(args.kit)
    state_dir = args.state_dir.expanduser().resolve()
    config = run_mapping(args, len(srv.site_keys), state_dir)
    app = (args.app or default_app_dir()).resolve()
    code = submit_run(app, config, state_dir / "flwr-home")
    print(f"run outputs: {config['out-dir']}")
    return code or _record_status(Path(config["out-dir"]))


def _app_hash(args: argparse.Namespace) -> int:
    from server.submit import app_hash, default_app_dir

    print(app_hash((args.app or default_app_dir()).resolve()))
    return 0


def _record_status(out_dir: Path) -> int:
    """0 when the run record says completed, else 1 with its error logged.

    `flwr run --stream` exits 0 when the run's logs end, whether the run completed or
    failed, so the exit status is taken from run.json.
    """
    import json

    try:
        record = json.loads((out_dir / "run.json").read_text())
    except (OSError, ValueError):
        log.error("the run left no readable run.json in %s; see the log above", out_dir)
        return 1
    if record.get("status") == "completed":
        return 0
    log.error("the run %s: %s", record.get("status"), record.get("error", "see the log above"))
    return 1


def run_mapping(args: argparse.Namespace, num_sites: int, state_dir: Path) -> dict[str, Any]:
    """The run config of `server run`: derived defaults < --set < flags typed.

    With `--resume`, the interrupted run's stored config replaces the derived defaults;
    with `--evaluate-only MODEL`, the model file's task options and seed join them. The
    result is checked here, at the door, before anything is submitted.
    """
    from shared.bundle import check_evaluated_model, evaluation_run_config
    from shared.config import RunConfig, parse_overrides
    from shared.errors import ConfigError

    typed = {
        "task": args.task,
        "num-server-rounds": args.rounds,
        "strategy": args.strategy,
        "min-sites": args.min_sites,
        "round-timeout": args.round_timeout,
        "secagg": False if args.no_secagg else None,
    }
    given = {key: value for key, value in typed.items() if value is not None}
    if args.resume is not None and args.evaluate_only is not None:
        raise ConfigError("--resume and --evaluate-only do not go together: give one of them")
    if args.resume is not None:
        from server.resume import stored_config

        out_dir = args.resume.expanduser().resolve()
        base: dict[str, Any] = {**stored_config(out_dir), "resume-from": str(out_dir)}
    else:
        out_dir = args.out_dir or state_dir / "runs" / time.strftime("%Y%m%d-%H%M%S")
        base = {"min-sites": num_sites, "secagg": True}
        if args.evaluate_only is not None:
            base.update(evaluation_run_config(args.evaluate_only.expanduser()))
    config = {**base, **parse_overrides(args.options), **given}
    config["out-dir"] = str(Path(out_dir).expanduser().resolve())
    # Refuse bad keys and values, and a model file that does not fit, before submitting.
    check_evaluated_model(RunConfig.from_mapping(config))
    return config
