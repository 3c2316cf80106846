"""Round checkpoints: the named global state dict, the round, the strategy's state, the config."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import ConfigError

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]

_MODEL = "model/"
_STRATEGY = "strategy/"
_META = "meta.json"


@dataclass(frozen=True)
class Checkpoint:
    """Everything needed to continue a run after round `server_round`.

    Attributes
    ----------
    server_round : int
        The last completed round.
    state : dict of str to ndarray
        The global model's state dict, by name, in the model's order.
    strategy_state : dict of str to list of ndarray
        The server optimiser's state (e.g. FedAdam's `m_t`, `v_t`), by attribute.
    config : dict
        The run config the round ran with.
    """

    server_round: int
    state: dict[str, np.ndarray]
    strategy_state: dict[str, list[np.ndarray]]
    config: dict[str, Any]


def save_checkpoint(
    path: Path,
    server_round: int,
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    strategy_state: Mapping[str, Sequence[np.ndarray]],
    config: Mapping[str, Any],
) -> Path:
    """Write one checkpoint atomically (temp file + rename): a crash leaves the old one."""
    entries: dict[str, np.ndarray] = {
        f"{_MODEL}{name}": np.asarray(a) for name, a in zip(names, arrays, strict=True)
    }
    for attr, values in strategy_state.items():
        for i, value in enumerate(values):
            entries[f"{_STRATEGY}{attr}/{i:05d}"] = np.asarray(value)
    meta = {"round": server_round, "config": dict(config), "model_keys": list(names)}
    entries[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        np.savez(handle, **entries)  # type: ignore[arg-type]  # numpy's stub types **kwds badly
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`.

    Raises
    ------
    ConfigError
        When the file is missing or not a MedFleet checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {key: data[key] for key in data.files}
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"checkpoint {path.name} cannot be read ({type(err).__name__}); resume from an "
            "earlier round's checkpoint or start a new run"
        ) from None
    if _META not in entries:
        raise ConfigError(f"{path.name} is not a MedFleet round checkpoint (no {_META})")
    meta = json.loads(entries.pop(_META).tobytes().decode())
    state = {name: entries[f"{_MODEL}{name}"] for name in meta["model_keys"]}
    strategy: dict[str, list[np.ndarray]] = {}
    for key in sorted(k for k in entries if k.startswith(_STRATEGY)):
        attr = key[len(_STRATEGY) :].rsplit("/", 1)[0]
        strategy.setdefault(attr, []).append(entries[key])
    return Checkpoint(int(meta["round"]), state, strategy, dict(meta["config"]))
