"""The task interface: one small contract that classification, segmentation and GAN implement."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from shared.config import RunConfig
from shared.errors import ConfigError
from shared.privacy import DpConfig
from shared.scaffold import DriftCorrection
from shared.tasks.loop import train_local
from shared.weights import get_weights, set_weights

__all__ = ["Prediction", "Predictions", "RoundResult", "SiteData", "Task", "TrainSettings"]


@dataclass(frozen=True)
class TrainSettings:
    """What a site needs to run one local round."""

    local_epochs: int
    batch_size: int
    lr: float
    seed: int
    device: torch.device
    server_round: int = 1
    #: FedProx's proximal weight (the strategy's ``proximal_mu``); 0 is plain local SGD.
    proximal_mu: float = 0.0
    #: Clip each step's gradient to this global L2 norm; 0 leaves gradients as they are.
    grad_clip_norm: float = 0.0
    #: Mixed precision on CUDA (bf16, else fp16 with loss scaling); ignored on CPU.
    amp: bool = True
    #: DP-SGD (Opacus) when its mode is ``dp-sgd``; `dp = client` works outside the loop.
    dp: DpConfig | None = None
    #: The run's total rounds: DP-SGD spreads a target epsilon over all of them.
    num_rounds: int = 1
    #: SCAFFOLD (`strategy = scaffold`): the round's control-variate correction.
    scaffold: DriftCorrection | None = None
    #: The local optimiser (`optimizer`): ``adam``, or ``sgd`` with `momentum`.
    optimizer: str = "adam"
    momentum: float = 0.9

    @classmethod
    def from_run(cls, run: RunConfig, device: torch.device, **fields: Any) -> TrainSettings:
        """A round's settings from the run config; `fields` override any of them."""
        values: dict[str, Any] = {
            "local_epochs": run.local_epochs,
            "batch_size": run.batch_size,
            "lr": run.lr,
            "seed": run.seed,
            "device": device,
            "grad_clip_norm": run.grad_clip_norm,
            "amp": run.amp,
            "dp": DpConfig.from_run(run),
            "num_rounds": run.num_rounds,
            "optimizer": str(run.option("optimizer")),
            "momentum": float(run.option("momentum")),
        }
        return cls(**{**values, **fields})

    def __post_init__(self) -> None:
        for key, value in (
            ("proximal_mu", self.proximal_mu),
            ("grad-clip-norm", self.grad_clip_norm),
        ):
            if not value >= 0.0:  # also rejects NaN
                raise ConfigError(f"config key '{key}' must be >= 0, got {value}")


@dataclass
class SiteData:
    """A site's prepared data. Never leaves the site; only `report` counts may."""

    name: str
    train: Any
    val: Any
    report: Mapping[str, int] = field(default_factory=dict)
    #: Task-specific site-local state (e.g. class weights); never sent.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def num_val(self) -> int:
        return len(self.val)


@dataclass(frozen=True)
class RoundResult:
    """Counts and scores from one local train or evaluate call (safe to send)."""

    num_examples: int
    metrics: dict[str, float]


@dataclass(frozen=True, eq=False)
class Prediction:
    """One model output for one input of `Task.predict`. Site-local: keys are DICOM UIDs.

    Attributes
    ----------
    key : str
        What was predicted: the SOP Instance UID of a classified image, the Series
        Instance UID (or NIfTI file stem) of a segmented volume, ``sample-<i>`` for a
        generated image.
    values : dict[str, float]
        Scores such as ``{"probability": p}`` or ``{"volume_mm3_1": v}``.
    array : numpy.ndarray or None
        An image-shaped output (label map, generated image), None when there is none.
    references : tuple
        Site-local facts about the inputs the output is about, for writers that need
        them: the slice headers (pydicom datasets, no pixels) a DICOM SEG references, the
        image record an overlay is drawn on. Empty when there are none; never sent.
    """

    key: str
    values: dict[str, float] = field(default_factory=dict)
    array: np.ndarray | None = None
    references: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Predictions(Sequence[Prediction]):
    """What `Task.predict` returns: one `Prediction` per usable input, and the input counts.

    Attributes
    ----------
    items : list[Prediction]
        In a stable order (path order for images, UID or file order for volumes).
    inputs : dict[str, int]
        Counts as `medfleet data check` gives them (``files``, ``usable``, ``skipped``
        and one ``skipped_<reason>`` per reason), so unusable inputs are reported.
    """

    items: list[Prediction]
    inputs: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Prediction:  # type: ignore[override]
        return self.items[index]

    def __iter__(self) -> Iterator[Prediction]:
        return iter(self.items)


class Task(ABC):
    """A federated learning task: model, local training, evaluation, weights in/out.

    Implementations live one per module in `shared/tasks/` and are picked by name
    through `shared.tasks.get_task`.
    """

    name: ClassVar[str]
    #: Metrics shown in the per-round table, in order.
    table_metrics: ClassVar[tuple[str, ...]] = ("loss",)

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    @abstractmethod
    def build_model(self) -> nn.Module:
        """Return a freshly initialised model (same seed gives the same weights)."""

    @abstractmethod
    def load_site(self, site_dir: Path, cache_dir: Path | None = None) -> SiteData:
        """Index and prepare a site's data folder (train/val split, transforms, cache)."""

    def train_round(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        """Train `model` in place on the site's train split for the configured epochs.

        Supervised tasks keep this template and supply `batch_loss` (and, when the
        defaults do not fit, `train_loader` and `make_optimizer`); the shared loop
        (`shared.tasks.loop.train_local`) does seeding, device, AMP, clipping and FedProx.
        Tasks with another kind of step (the GAN) override it. Metrics: ``train_loss``,
        and with DP-SGD the site's ``dp_epsilon`` so far and its ``dp_noise_multiplier``.
        """
        private = None
        if settings.dp is not None and settings.dp.mode == "dp-sgd":
            private = settings.dp.for_site(
                data.num_train, settings.batch_size, settings.local_epochs, settings.num_rounds
            )
        loss = train_local(
            model,
            lambda: self.train_loader(data, settings),
            lambda net, batch: self.batch_loss(net, batch, data, settings),
            lambda net: self.make_optimizer(net, settings),
            settings,
            private,
        )
        metrics = {"train_loss": loss}
        if private is not None:
            metrics.update(private.metrics(settings.server_round))
        return RoundResult(data.num_train, metrics)

    def train_loader(self, data: SiteData, settings: TrainSettings) -> Iterable[Any]:
        """The round's shuffled training batches (MONAI's loader seeds random transforms).

        On CUDA the batches are built in pinned memory, so that `batch_loss` can copy them
        to the GPU without blocking (``non_blocking=True``).
        """
        from monai.data import DataLoader

        return DataLoader(
            data.train,
            batch_size=settings.batch_size,
            shuffle=True,
            pin_memory=settings.device.type == "cuda",
        )

    def batch_loss(
        self, model: nn.Module, batch: Any, data: SiteData, settings: TrainSettings
    ) -> tuple[torch.Tensor, int]:
        """Mean loss of one training batch and its number of examples.

        Moves the batch to ``settings.device``; `data` gives site-local state such as
        class weights. Required by the `train_round` template.
        """
        raise NotImplementedError(f"task '{self.name}' does not define batch_loss")

    def make_optimizer(self, model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
        """The round's optimizer: Adam at ``settings.lr``, or SGD with momentum."""
        if settings.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
        return torch.optim.Adam(model.parameters(), lr=settings.lr)

    @abstractmethod
    def evaluate(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        """Score `model` on the site's validation split; metrics include 'loss'."""

    def predict(self, model: nn.Module, source: Path, settings: TrainSettings) -> Predictions:
        """Run `model` on every usable input under `source` (no labels needed).

        Uses the task's evaluation transforms and inference; ``settings`` gives the
        device, batch size and seed. Returns one `Prediction` per input, in a stable order,
        with the counts of the inputs found and skipped.
        """
        raise NotImplementedError(f"task '{self.name}' does not define predict")

    def write_predictions(
        self, model: nn.Module, predictions: Predictions, out_dir: Path, settings: TrainSettings
    ) -> dict[str, list[str]]:
        """Write `predictions` under `out_dir` as files people and viewers open.

        The default writes ``predictions.csv`` and ``predictions.json`` of every value;
        tasks add their images and DICOM objects. Returns the files written, by kind.
        """
        from shared.predict.tables import write_tables

        return {"tables": [str(p) for p in write_tables(predictions, out_dir)]}

    def export_module(self, model: nn.Module) -> nn.Module:
        """The network that `medfleet export` writes (the GAN exports its generator)."""
        return model

    def example_input(self, batch: int = 2) -> torch.Tensor:
        """A seeded input batch of `export_module`'s shape, to check an export against."""
        raise NotImplementedError(f"task '{self.name}' does not define example_input")

    def input_spec(self) -> dict[str, Any]:
        """What the model expects as input (size, channels, normalisation), for the model
        file: people and viewers read it; predict rebuilds the transforms from the config."""
        return {}

    def get_weights(self, model: nn.Module) -> list[np.ndarray]:
        """The model's state as a list of arrays (the unit Flower averages)."""
        return get_weights(model)

    def set_weights(self, model: nn.Module, arrays: Sequence[np.ndarray]) -> None:
        """Load arrays into `model`, cast to its dtypes, after shape and finiteness checks."""
        set_weights(model, arrays)

    def aggregate_metrics(
        self, results: Sequence[tuple[int, Mapping[str, Any]]]
    ) -> dict[str, float]:
        """Combine per-site metrics into one set, weighted by each site's example count."""
        from shared.metrics import weighted_mean

        return weighted_mean(results)

    def on_round_end(self, model: nn.Module, server_round: int, out_dir: Path) -> dict[str, str]:
        """Server-side hook after aggregation (e.g. save a GAN sample grid).

        Returns the files written, by kind, for the run record.
        """
        return {}
