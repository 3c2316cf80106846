"""`medfleet site start`: the long-running daemon of one hospital site."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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
    start.set_defaults(func=_start)


def _start(args: argparse.Namespace) -> int:
    import dataclasses

    from client.daemon import SiteKit, run_site
    from shared.address import split_address
    from shared.config import RunConfig
    from shared.errors import ConfigError

    kit = SiteKit.load(args.kit)
    if args.server:
        split_address(args.server)
        kit = dataclasses.replace(kit, server_address=args.server)
    data = args.data or (Path(kit.data_dir) if kit.data_dir else None)
    if data is None:
        raise ConfigError("no data folder: pass --data or set data-dir in the kit's site.toml")
    device = args.device or kit.device
    RunConfig(device=device).validate()  # same rule as the apps: auto, cpu or cuda[:N]
    extra = dict(pair.split("=", 1) for pair in args.extra if "=" in pair)
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
    )
