"""Run-wide and per-site settings, parsed once at the door into frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

__all__ = [
    "RunConfig",
    "SecAggConfig",
    "SiteConfig",
    "parse_overrides",
    "resolve_device",
    "site_folders",
]

Scalar = int | float | str | bool


def _get(cfg: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = cfg.get(key, default)
    if kind is bool and isinstance(value, str):
        if value.lower() in ("true", "1", "yes", "on"):
            return True
        if value.lower() in ("false", "0", "no", "off"):
            return False
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise TypeError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"config key '{key}' must be {kind.__name__}, got {value!r}; fix it in "
            "[tool.flwr.app.config], --run-config or the command-line option"
        ) from None


def _check_range(key: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        upper = f" and <= {high}" if high is not None else ""
        raise ConfigError(f"config key '{key}' must be >= {low}{upper}, got {value}")


@dataclass(frozen=True)
class SecAggConfig:
    """SecAgg+ parameters (Flower's SecAggPlusWorkflow)."""

    enabled: bool = False
    num_shares: int = 3
    threshold: int = 2
    clipping_range: float = 8.0
    max_weight: float = 10000.0


@dataclass(frozen=True)
class RunConfig:
    """Settings shared by every site for one federated run."""

    task: str = "classification"
    num_rounds: int = 5
    local_epochs: int = 1
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 42
    fraction_evaluate: float = 1.0
    min_sites: int = 2
    device: str = "auto"
    sim_data_root: str = ""
    out_dir: str = "runs/flwr-run"
    secagg: SecAggConfig = field(default_factory=SecAggConfig)
    options: Mapping[str, Scalar] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> RunConfig:
        """Parse Flower's `context.run_config` (flat kebab-case keys)."""
        run = cls(
            task=_get(cfg, "task", str, cls.task),
            num_rounds=_get(cfg, "num-server-rounds", int, cls.num_rounds),
            local_epochs=_get(cfg, "local-epochs", int, cls.local_epochs),
            batch_size=_get(cfg, "batch-size", int, cls.batch_size),
            lr=_get(cfg, "lr", float, cls.lr),
            seed=_get(cfg, "seed", int, cls.seed),
            fraction_evaluate=_get(cfg, "fraction-evaluate", float, cls.fraction_evaluate),
            min_sites=_get(cfg, "min-sites", int, cls.min_sites),
            device=_get(cfg, "device", str, cls.device),
            sim_data_root=_get(cfg, "sim-data-root", str, cls.sim_data_root),
            out_dir=_get(cfg, "out-dir", str, cls.out_dir),
            secagg=SecAggConfig(
                enabled=_get(cfg, "secagg", bool, False),
                num_shares=_get(cfg, "secagg-num-shares", int, 3),
                threshold=_get(cfg, "secagg-threshold", int, 2),
                clipping_range=_get(cfg, "secagg-clipping-range", float, 8.0),
                max_weight=_get(cfg, "secagg-max-weight", float, 10000.0),
            ),
            options=dict(cfg),
        )
        run.validate()
        return run

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range key."""
        _check_range("num-server-rounds", self.num_rounds, 1)
        _check_range("local-epochs", self.local_epochs, 1)
        _check_range("batch-size", self.batch_size, 1)
        _check_range("lr", self.lr, 1e-8, 10.0)
        _check_range("fraction-evaluate", self.fraction_evaluate, 0.0, 1.0)
        _check_range("min-sites", self.min_sites, 1)
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(
                f"config key 'device' must be auto, cpu or cuda[:N], got {self.device!r}"
            )

    def to_mapping(self) -> dict[str, Scalar]:
        """The flat run-config form, as Flower passes it to the apps."""
        out: dict[str, Scalar] = dict(self.options)
        out.update(
            {
                "task": self.task,
                "num-server-rounds": self.num_rounds,
                "local-epochs": self.local_epochs,
                "batch-size": self.batch_size,
                "lr": self.lr,
                "seed": self.seed,
                "fraction-evaluate": self.fraction_evaluate,
                "min-sites": self.min_sites,
                "device": self.device,
                "sim-data-root": self.sim_data_root,
                "out-dir": self.out_dir,
                "secagg": self.secagg.enabled,
                "secagg-num-shares": self.secagg.num_shares,
                "secagg-threshold": self.secagg.threshold,
                "secagg-clipping-range": self.secagg.clipping_range,
                "secagg-max-weight": self.secagg.max_weight,
            }
        )
        return out


@dataclass(frozen=True)
class SiteConfig:
    """Facts about one site: where its data is, what it is called, what it computes on."""

    name: str
    data_dir: Path
    device: str = "auto"
    cache_dir: Path | None = None

    @classmethod
    def from_node_config(cls, node: Mapping[str, Any], run: RunConfig) -> SiteConfig:
        """Parse Flower's `context.node_config`.

        A deployed SuperNode passes `data-dir` (and optionally `site-name`, `device`,
        `cache-dir`) with `--node-config`. A simulated node only has `partition-id`; it is
        mapped to the N-th site folder (sorted) under the run's `sim-data-root`.
        """
        device = str(node.get("device", run.device))
        cache = node.get("cache-dir")
        if "data-dir" in node:
            data_dir = Path(str(node["data-dir"]))
            name = str(node.get("site-name", data_dir.name))
        elif "partition-id" in node:
            data_dir = _simulated_site_dir(run, int(node["partition-id"]))
            name = data_dir.name
        else:
            raise ConfigError(
                "node config needs 'data-dir' (start the site with "
                "--node-config \"data-dir='/path/to/dicom'\")"
            )
        if not data_dir.is_dir():
            raise ConfigError(
                f"node config 'data-dir' of site '{name}' is not a directory; check the mount"
            )
        return cls(
            name=name,
            data_dir=data_dir,
            device=device,
            cache_dir=Path(str(cache)) if cache else None,
        )


def site_folders(root: Path) -> list[Path]:
    """The site folders under a simulation data root, in the order nodes are mapped to them."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _simulated_site_dir(run: RunConfig, partition_id: int) -> Path:
    if not run.sim_data_root:
        raise ConfigError("run config 'sim-data-root' is empty; run `medfleet sim --data DIR`")
    sites = site_folders(Path(run.sim_data_root))
    if partition_id >= len(sites):
        raise ConfigError(
            f"simulated site {partition_id} has no folder: 'sim-data-root' holds "
            f"{len(sites)} site folders; generate more with `medfleet synth --sites N`"
        )
    return sites[partition_id]


def resolve_device(name: str) -> str:
    """Map 'auto' to 'cuda' when a GPU is visible, else 'cpu'; check an explicit cuda."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but no CUDA device is visible; use 'auto'")
    return name


def parse_overrides(pairs: list[str]) -> dict[str, Scalar]:
    """Parse `--set KEY=VALUE` pairs; values are TOML literals, a bare word is a string.

    `image-size=96` gives an int, `lr=0.5` a float, `secagg=true` a bool and
    `seg-channels=8,16` the string "8,16", as Flower's `--run-config` would read them.
    """
    import tomllib

    options: dict[str, Scalar] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            options[key] = raw
    return options
