"""Continue an interrupted run from its last round checkpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flwr.server.strategy import Strategy

from server.checkpoint import Checkpoint, load_checkpoint
from shared.errors import ConfigError

__all__ = ["latest_checkpoint", "restore_strategy_state", "stored_config"]

_ROUND_FILE = re.compile(r"^round-(\d+)\.npz$")
#: Keys a resumed run takes from the interrupted one even if typed again: changing them
#: would make the checkpoint mean something else.
FIXED_KEYS = ("task", "strategy", "seed")


def stored_config(run_dir: Path) -> dict[str, Any]:
    """The run config recorded in RUN_DIR/run.json.

    Raises
    ------
    ConfigError
        When RUN_DIR holds no run record.
    """
    path = run_dir / "run.json"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"--resume {run_dir}: no run.json there; pass the out folder of the run to resume"
        ) from None
    except json.JSONDecodeError:
        raise ConfigError(f"--resume {run_dir}: run.json is not valid JSON") from None
    return dict(record["config"])


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The checkpoint of the last completed round in RUN_DIR/checkpoints, if any."""
    folder = run_dir / "checkpoints"
    rounds = sorted(
        (int(m.group(1)), p)
        for p in (folder.iterdir() if folder.is_dir() else [])
        if (m := _ROUND_FILE.match(p.name))
    )
    return load_checkpoint(rounds[-1][1]) if rounds else None


def check_compatible(checkpoint: Checkpoint, config: dict[str, Any]) -> None:
    """Refuse to resume with a task, strategy or seed other than the checkpoint's."""
    for key in FIXED_KEYS:
        if key in checkpoint.config and checkpoint.config[key] != config.get(key):
            raise ConfigError(
                f"--resume: config key '{key}' is {config.get(key)!r} but the run was "
                f"started with {checkpoint.config[key]!r}; start a new run to change it"
            )


def restore_strategy_state(strategy: Strategy, checkpoint: Checkpoint) -> None:
    """Put the server optimiser's saved state back (e.g. FedAdam's moments)."""
    for attr, arrays in checkpoint.strategy_state.items():
        if not hasattr(strategy, attr):
            raise ConfigError(
                f"--resume: the checkpoint holds '{attr}' state that strategy "
                f"{type(strategy).__name__} does not have; resume with the original strategy"
            )
        setattr(strategy, attr, list(arrays))
