"""The `medfleet` console command: one sub-command per role, registered by each package."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from shared.errors import MedFleetError

# Each module exposes `register(subparsers)`; a sub-command sets `func(args) -> int`.
# Heavy imports (torch, flwr) stay inside the command functions so `--help` is fast.
COMMAND_MODULES = (
    "simulations.cli",
    "simulations.synth.cli",
    "shared.dicom.cli",
    "shared.volumes.cli",
    "shared.predict.cli",
    "server.cli",
    "server.report_cli",
    "client.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every role's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="medfleet",
        description="Federated medical imaging across hospital sites (Flower + MONAI).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            # A role package missing from this install (e.g. a site-only image) is fine.
            if err.name is None or not name.startswith(err.name):
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `medfleet` command."""
    args = build_parser().parse_args(argv)
    # Our own loggers at INFO; third-party libraries only when something is wrong.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("medfleet").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # Flower logs through its own handler; without this every line would print twice.
    logging.getLogger("flwr").propagate = False
    try:
        return int(args.func(args) or 0)
    except MedFleetError as err:
        print(f"medfleet: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
