"""Run-wide and per-site settings, parsed once at the door into frozen dataclasses."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from shared.run_options import (
    EVALUATION,
    FEDERATION,
    PRIVACY,
    ROBUSTNESS,
    SECAGG,
    STRATEGY,
    TRAINING,
)
from shared.schema import Option, Scalar, Schema

__all__ = [
    "ROBUST_STRATEGIES",
    "RunConfig",
    "SecAggConfig",
    "SiteConfig",
    "parse_overrides",
    "resolve_device",
    "run_schema",
    "site_folders",
    "task_data_key",
]

#: Strategies that need every site's own update: SecAgg+ only ever shows them the sum.
ROBUST_STRATEGIES = ("fedmedian", "fedtrimmedavg", "krum", "bulyan")


@functools.cache
def run_schema() -> Schema:
    """Every key MedFleet reads: run-wide, strategy, SecAgg+ and each task's options."""
    from shared.tasks import TASKS, task_options

    task = Option("task", str, "classification", "the task to train", choices=tuple(TASKS))
    groups = (TRAINING, FEDERATION, EVALUATION, STRATEGY, ROBUSTNESS, SECAGG, PRIVACY)
    return Schema([task, *(o for group in groups for o in group), *task_options()])


#: Tasks that train with a step of their own rather than the supervised loop (the GAN).
TASKS_WITH_OWN_STEP = ("gan",)

#: Strategies whose aggregate is the plain mean that `dp = client` calibrates its noise to.
DP_CLIENT_STRATEGIES = ("fedavg", "fedprox", "fedbn")


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
    """Settings shared by every site for one federated run.

    Built once at the door by `from_mapping` from Flower's run config (the app's
    `[tool.flwr.app.config]` defaults, overlaid with `--run-config`) or from the CLI's
    merged flags and `--set` values; `options` holds every parsed key, typed.
    """

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
    strategy: str = "fedavg"
    round_timeout: float = 3600.0
    grad_clip_norm: float = 0.0
    amp: bool = True
    max_update_norm_ratio: float = 10.0
    resume_from: str = ""
    secagg: SecAggConfig = field(default_factory=SecAggConfig)
    options: Mapping[str, Scalar] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> RunConfig:
        """Parse flat kebab-case keys; unknown keys and bad values raise ConfigError."""
        v = run_schema().parse(cfg)
        run = cls(
            task=str(v["task"]),
            num_rounds=int(v["num-server-rounds"]),
            local_epochs=int(v["local-epochs"]),
            batch_size=int(v["batch-size"]),
            lr=float(v["lr"]),
            seed=int(v["seed"]),
            fraction_evaluate=float(v["fraction-evaluate"]),
            min_sites=int(v["min-sites"]),
            device=str(v["device"]),
            sim_data_root=str(v["sim-data-root"]),
            out_dir=str(v["out-dir"]),
            strategy=str(v["strategy"]),
            round_timeout=float(v["round-timeout"]),
            grad_clip_norm=float(v["grad-clip-norm"]),
            amp=bool(v["amp"]),
            max_update_norm_ratio=float(v["max-update-norm-ratio"]),
            resume_from=str(v["resume-from"]),
            secagg=SecAggConfig(
                enabled=bool(v["secagg"]),
                num_shares=int(v["secagg-num-shares"]),
                threshold=int(v["secagg-threshold"]),
                clipping_range=float(v["secagg-clipping-range"]),
                max_weight=float(v["secagg-max-weight"]),
            ),
            options=v,
        )
        run.validate()
        return run

    @property
    def local_norm(self) -> bool:
        """FedBN: sites keep their normalisation layers (`strategy = fedbn` or `local-norm`)."""
        return self.strategy == "fedbn" or bool(self.option("local-norm"))

    def option(self, key: str) -> Scalar:
        """A declared key's typed value: from `options`, else the declared default."""
        declared = run_schema().options.get(key)
        if declared is None:
            raise ConfigError(f"config key '{key}' is not declared in MedFleet's schema")
        return declared.parse(self.options.get(key, declared.default))

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key or combination of keys."""
        fields = self.to_mapping()
        schema = run_schema()
        for key in _TYPED_KEYS:
            schema.options[key].parse(fields[key])
        if self.device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", self.device):
            raise ConfigError(
                f"config key 'device' must be auto, cpu or cuda[:N], got {self.device!r}"
            )
        if self.secagg.enabled and self.strategy in ROBUST_STRATEGIES:
            raise ConfigError(
                f"config key 'strategy' = '{self.strategy}' needs each site's own update, "
                "but SecAgg+ shows the server only their sum: use fedavg, fedprox, fedavgm, "
                "fedadam, fedyogi or fedadagrad with 'secagg = true'"
            )
        self._check_byzantine_sites()
        self._check_scaffold()
        from shared.cross_site import check_cross_site

        check_cross_site(self)
        self._check_privacy()
        if self.secagg.enabled:
            from shared.secagg import validate_secagg

            validate_secagg(self.secagg, self.min_sites)

    def _check_privacy(self) -> None:
        """DP settings whose guarantee would not hold are refused, saying what to change."""
        mode = str(self.option("dp"))
        if mode == "off":
            return
        target = float(self.option("dp-target-epsilon"))
        if target <= 0 and float(self.option("dp-noise-multiplier")) <= 0:
            raise ConfigError(
                f"dp = '{mode}' with dp-noise-multiplier = 0 adds no noise: set "
                "'dp-noise-multiplier' > 0 or 'dp-target-epsilon'"
            )
        if mode == "client" and self.strategy not in DP_CLIENT_STRATEGIES:
            raise ConfigError(
                f"dp = 'client' calibrates its noise to a plain mean of clipped updates; "
                f"strategy '{self.strategy}' aggregates otherwise: use "
                f"{' or '.join(DP_CLIENT_STRATEGIES)}, or dp = 'dp-sgd'"
            )
        if mode != "dp-sgd":
            return
        if self.task == "detection":
            raise ConfigError(
                "dp = 'dp-sgd' needs each example's own gradient: the detection task's ResNet "
                "uses batch norm and its loss pools the anchors of a batch; use dp = 'client'"
            )
        if self.strategy == "fedprox":
            raise ConfigError(
                "dp = 'dp-sgd' clips and noises each example's gradient, and FedProx's "
                "proximal term is not per example: use strategy 'fedavg' (or another) with dp-sgd"
            )
        if self.grad_clip_norm > 0:
            raise ConfigError(
                "dp = 'dp-sgd' clips each example's gradient to 'dp-clip-norm'; set "
                "'grad-clip-norm' = 0"
            )
        batch_norm = _BATCH_NORM_CHOICES.get(self.task)
        if batch_norm is not None and self.option(batch_norm[0]) == batch_norm[1]:
            key, value, instead = batch_norm
            raise ConfigError(
                f"dp = 'dp-sgd' needs each example's own gradient, which batch norm mixes "
                f"across the batch: {key} = '{value}' cannot train with dp-sgd; use "
                f"{key} = '{instead}'"
            )
        if self.task == "segmentation" and int(self.option("seg-samples-per-case")) != 1:
            raise ConfigError(
                "dp = 'dp-sgd' protects one patient per training example: set "
                "'seg-samples-per-case' = 1 (several patches of one case per step would "
                "each count as a different patient)"
            )

    def _check_scaffold(self) -> None:
        """SCAFFOLD corrects the supervised training loop's steps; it needs that loop."""
        if self.strategy != "scaffold":
            return
        if self.task in TASKS_WITH_OWN_STEP:
            raise ConfigError(
                f"strategy 'scaffold' corrects the steps of the supervised training loop, and "
                f"task '{self.task}' trains with its own step: use fedavg, fedprox or fedbn"
            )
        if str(self.option("dp")) != "off":
            raise ConfigError(
                "strategy 'scaffold' sends each site's control variate beside its update, "
                "which MedFleet's DP modes do not clip or noise: set 'dp' = 'off', or use "
                "fedavg or fedprox with dp"
            )

    def _check_byzantine_sites(self) -> None:
        """Krum needs n >= 2f + 3 sites and Bulyan n >= 4f + 3 for f = `num-malicious`."""
        factor = {"krum": 2, "bulyan": 4}.get(self.strategy)
        malicious = int(self.option("num-malicious"))
        if factor is not None and self.min_sites < factor * malicious + 3:
            raise ConfigError(
                f"strategy '{self.strategy}' with num-malicious={malicious} needs min-sites >= "
                f"{factor * malicious + 3}, got {self.min_sites}: lower 'num-malicious' or "
                "add sites"
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
                "strategy": self.strategy,
                "round-timeout": self.round_timeout,
                "grad-clip-norm": self.grad_clip_norm,
                "amp": self.amp,
                "max-update-norm-ratio": self.max_update_norm_ratio,
                "resume-from": self.resume_from,
                "secagg": self.secagg.enabled,
                "secagg-num-shares": self.secagg.num_shares,
                "secagg-threshold": self.secagg.threshold,
                "secagg-clipping-range": self.secagg.clipping_range,
                "secagg-max-weight": self.secagg.max_weight,
            }
        )
        return out


#: task -> (key, value that gives the model batch norm, a value without it).
_BATCH_NORM_CHOICES = {
    "classification": ("model", "resnet18", "lesion-cnn"),
    "segmentation": ("seg-norm", "batch", "instance"),
}

#: Keys held in RunConfig's own fields, range-checked again by `validate`.
_TYPED_KEYS = (
    "task",
    "num-server-rounds",
    "local-epochs",
    "batch-size",
    "lr",
    "seed",
    "fraction-evaluate",
    "min-sites",
    "round-timeout",
    "strategy",
    "grad-clip-norm",
    "max-update-norm-ratio",
    "secagg",
    "secagg-num-shares",
    "secagg-threshold",
)


@dataclass(frozen=True)
class SiteConfig:
    """Facts about one site: where its data is, what it is called, what it computes on."""

    name: str
    data_dir: Path
    device: str = "auto"
    cache_dir: Path | None = None
    #: A virtual site of `medfleet sim` (mapped from its partition id), not a deployment.
    simulated: bool = False

    @classmethod
    def from_node_config(cls, node: Mapping[str, Any], run: RunConfig) -> SiteConfig:
        """Parse Flower's `context.node_config`.

        A deployed SuperNode passes `data-dir` (and optionally `site-name`, `device`,
        `cache-dir`, and ``data-dir-TASK``: the folder a run of that task reads instead)
        with `--node-config`. A simulated node only has `partition-id`; it is
        mapped to the N-th site folder (sorted) under the run's `sim-data-root`.
        """
        device = str(node.get("device", run.device))
        cache = node.get("cache-dir")
        if "data-dir" in node:
            data_dir = Path(str(node.get(task_data_key(run.task), node["data-dir"])))
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
            simulated="data-dir" not in node,
        )


def task_data_key(task: str) -> str:
    """The node-config key of the folder that runs of `task` read (`site start --task-data`)."""
    return f"data-dir-{task}"


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
