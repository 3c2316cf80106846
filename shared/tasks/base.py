"""The task interface: one small contract that classification, segmentation and GAN implement."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from shared.config import RunConfig
from shared.weights import get_weights, set_weights

__all__ = ["RoundResult", "SiteData", "Task", "TrainSettings"]


@dataclass(frozen=True)
class TrainSettings:
    """What a site needs to run one local round."""

    local_epochs: int
    batch_size: int
    lr: float
    seed: int
    device: torch.device
    server_round: int = 1


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

    @abstractmethod
    def train_round(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        """Train `model` in place on the site's train split for the configured epochs."""

    @abstractmethod
    def evaluate(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        """Score `model` on the site's validation split; metrics include 'loss'."""

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
