"""`medfleet site start`: the long-running daemon of one hospital site."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from client.isolation import (
    CLIENTAPP_STARTS,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_IDLE_POLL_S,
    DEFAULT_POLL_S,
)

__all__ = ["register"]

DEFAULT_STATE = Path("~/.medfleet/site")


def register(subparsers: Any) -> None:
    """Add the site's sub-commands."""
    site = subparsers.add_parser("site", help="run this hospital's site daemon")
    sub = site.add_subparsers(dest="site_command", metavar="ACTION", required=True)
    start = sub.add_parser(
        "start",
        help="connect this site to the federation's server and serve training rounds",
        description=(
            "Start Flower's SuperNode with the site kit's CA certificate and authentication "
            "key. Images stay here; only SecAgg+-masked model updates and metrics leave."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    start.add_argument("--kit", type=Path, required=True, help="this site's kit folder")
    start.add_argument(
        "--data", type=Path, default=None, help="DICOM folder (default: kit's data-dir)"
    )
    start.add_argument(
        "--task-data",
        action="append",
        default=[],
        metavar="TASK=DIR",
        help="the folder a run of TASK reads instead of --data (repeatable), for a site in "
        "several studies, e.g. detection=/data/lung-ct",
    )
    start.add_argument(
        "--device", default=None, help="auto, cpu or cuda[:N] (default: kit's device)"
    )
    start.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE,
        help="Flower's local files; locked, so each daemon on a host needs its own",
    )
    start.add_argument(
        "--runtime-port",
        type=int,
        default=9094,
        help="local port of the SuperNode's runtime API (127.0.0.1 only); one per daemon",
    )
    start.add_argument("--server", default=None, help="override the kit's server host:port")
    start.add_argument(
        "--allow-plain",
        action="store_true",
        help="also accept rounds without SecAgg+ (not recommended)",
    )
    start.add_argument(
        "--node-config",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra node config, e.g. cache-dir=/var/cache",
    )
    start.add_argument("--max-restarts", type=int, default=None, help="default: unlimited")
    start.add_argument("--log-file", type=Path, default=None, help="default: standard output")
    start.add_argument(
        "--allow-any-app",
        action="store_true",
        help="run any app the server sends, approved or not (trusted test federations only)",
    )
    start.add_argument(
        "--clientapp-start",
        choices=CLIENTAPP_STARTS,
        default=CLIENTAPP_STARTS[0],
        help="fork: each ClientApp task forks a launcher that has torch and MONAI imported "
        "(seconds faster per SecAgg+ stage); spawn: a fresh flwr-clientapp process per task",
    )
    start.add_argument(
        "--poll-interval",
        type=float,
        default=DEFAULT_POLL_S,
        help="seconds the SuperNode waits before asking the server again when it has no "
        "message (Flower's own: 3); each SecAgg+ round waits it about five times",
    )
    start.add_argument(
        "--idle-poll-interval",
        type=float,
        default=DEFAULT_IDLE_POLL_S,
        help="after 30 s without a message the wait doubles per empty poll up to this many "
        "seconds (the next message resets it): a site at rest asks the server less often",
    )
    start.add_argument(
        "--heartbeat-interval",
        type=float,
        default=DEFAULT_HEARTBEAT_S,
        help="seconds between the site's heartbeats (10 to 1800); the server counts the site "
        "offline after two missed ones, and lets it back in after a crash only then",
    )
    start.add_argument(
        "--pacs-config",
        type=Path,
        default=None,
        help="the site's PACS file: without --data (and data-dir in the kit), train on its "
        "cache-dir (fill it with `medfleet site sync` / `site listen`)",
    )
    start.set_defaults(func=_start)
    health = sub.add_parser(
        "health",
        help="exit 0 when this site's SuperNode runs and its server answers (health checks)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    health.add_argument("--kit", type=Path, required=True, help="this site's kit folder")
    health.add_argument(
        "--runtime-port", type=int, default=9094, help="the daemon's --runtime-port"
    )
    health.set_defaults(func=_health)
    _register_approvals(sub)
    from client.pacs.cli import register as register_pacs

    register_pacs(sub)


def _register_approvals(sub: Any) -> None:
    """`site approve`, `site apps`, `site revoke`: what this site agrees to run."""
    approve = sub.add_parser(
        "approve",
        help="approve an app (its Flower FAB hash) to run at this site",
        description=(
            "Record the app's FAB hash in the state folder. The site daemon starts a run's "
            "ClientApp only if the run's FAB hash is approved; any other run is refused, "
            "naming its hash, before any of its code is imported. APP is a .fab file "
            "(`flwr build`), the app's project folder (built as `flwr run` builds it), or "
            "a 64-digit hash."
        ),
    )
    approve.add_argument("app", metavar="APP", help="FAB file, project folder or FAB hash")
    approve.add_argument(
        "--show", action="store_true", help="only show the app's hash and files; approve nothing"
    )
    apps = sub.add_parser("apps", help="list the apps approved to run at this site")
    apps.add_argument("--json", action="store_true", help="print the store as JSON")
    revoke = sub.add_parser("revoke", help="withdraw an app's approval (takes effect at once)")
    revoke.add_argument("hash", metavar="HASH", help="full FAB hash or a unique prefix (8+)")
    for parser, func in ((approve, _approve), (apps, _apps), (revoke, _revoke)):
        parser.add_argument(
            "--state-dir", type=Path, default=DEFAULT_STATE, help="the site daemon's state folder"
        )
        parser.set_defaults(func=func)


def _start(args: argparse.Namespace) -> int:
    import dataclasses

    from client.daemon import SiteKit, run_site, task_data_folders
    from shared.address import split_address
    from shared.config import RunConfig, task_data_key
    from shared.errors import ConfigError

    kit = SiteKit.load(args.kit)
    if args.server:
        split_address(args.server)
        kit = dataclasses.replace(kit, server_address=args.server)
    data = args.data or (Path(kit.data_dir) if kit.data_dir else None)
    if data is None and args.pacs_config is not None:
        from client.pacs.config import load_pacs_settings

        data = load_pacs_settings(args.pacs_config).cache_dir
    if data is None:
        raise ConfigError(
            "no data folder: pass --data or --pacs-config, or set data-dir in the kit's site.toml"
        )
    device = args.device or kit.device
    RunConfig(device=device).validate()  # same rule as the apps: auto, cpu or cuda[:N]
    extra = dict(pair.split("=", 1) for pair in args.extra if "=" in pair)
    for task, folder in task_data_folders(args.task_data).items():
        extra[task_data_key(task)] = str(folder)
    if args.allow_plain:
        extra["require-secagg"] = "false"
    return run_site(
        kit,
        data.expanduser().resolve(),
        device,
        state_dir=args.state_dir.expanduser().resolve(),
        runtime_port=args.runtime_port,
        node_config=extra,
        max_restarts=args.max_restarts,
        log_file=args.log_file,
        allow_any_app=args.allow_any_app,
        clientapp_start=args.clientapp_start,
        poll_interval=args.poll_interval,
        heartbeat_interval=args.heartbeat_interval,
        idle_poll_interval=args.idle_poll_interval,
    )


def _health(args: argparse.Namespace) -> int:
    from client.daemon import SiteKit
    from client.health import site_problems

    kit = SiteKit.load(args.kit)
    problems = site_problems(kit, args.runtime_port)
    for problem in problems:
        print(f"unhealthy: {problem}")
    if not problems:
        print(f"healthy: site {kit.name} is running and reaches {kit.server_address}")
    return 1 if problems else 0


def _approve(args: argparse.Namespace) -> int:
    from client.approval import ApprovalStore, load_app

    bundle, source = load_app(args.app)
    print(f"app:    {bundle.label}\nhash:   {bundle.hash}\nsource: {source}")
    for name in bundle.files:
        print(f"  {name}")
    if args.show:
        return 0
    entry = ApprovalStore(args.state_dir.expanduser().resolve()).approve(bundle, source)
    print(f"approved {entry.hash} ({entry.label}) at {entry.approved_at} by {entry.approved_by}")
    return 0


def _apps(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from client.approval import ApprovalStore

    apps = ApprovalStore(args.state_dir.expanduser().resolve()).apps()
    if args.json:
        print(json.dumps([asdict(app) for app in apps.values()], indent=2))
        return 0
    if not apps:
        print("no app approved: this site refuses every run (see `medfleet site approve`)")
    for app in sorted(apps.values(), key=lambda a: a.approved_at):
        print(f"{app.hash}  {app.label}\n    approved {app.approved_at} by {app.approved_by} "
              f"from {app.source}")  # fmt: skip
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from client.approval import ApprovalStore

    removed = ApprovalStore(args.state_dir.expanduser().resolve()).revoke(args.hash)
    print(f"revoked {removed.hash} ({removed.label}); runs of it are refused from now on")
    return 0
