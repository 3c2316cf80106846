"""Series classification task: one label per CT series, read slice by slice (cnn-gru) or max.

Why a task of its own rather than a `model` of the classification task: the unit of data
changes. The image classifier indexes single images labelled by SOP Instance UID in
``labels.csv``; this task assembles each series along its slice normal, reads labels per
Series Instance UID from ``series_labels.csv``, batches series of different lengths, and
predicts one probability per series. Generated sites differ as well (``medfleet synth
--task series``). What stays the same is the network key: `model` names the classifier,
as in the classification task, so ``--task series --set model=cnn-gru`` reads the series
with the recurrent network, and ``model = lesion-cnn`` (or ``resnet18``) is exactly the
image classifier scoring every slice alone, the series scored by its top slice: the
baseline the recurrent model has to beat.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset
from monai.transforms import Compose, EnsureTyped, RandFlipd, RandGaussianNoised, Resized
from torch import nn

from shared.config import RunConfig
from shared.data import read_label_manifest, split_by_patient
from shared.data.intensity import ScaleByModalityd
from shared.data.manifest import label_summary
from shared.data.untracked import Untracked
from shared.errors import ConfigError, DataError
from shared.metrics import pooled_classification_metrics
from shared.models import SeriesGRU, SliceMax
from shared.tasks.base import Prediction, Predictions, RoundResult, SiteData, Task, TrainSettings
from shared.tasks.classification import ClassificationTask, class_weights, score_logits
from shared.tasks.series_data import (
    LoadSeriesd,
    SeriesRecord,
    collate_series,
    index_series,
    series_items,
)
from shared.tasks.series_options import SERIES_LABELS_FILE

__all__ = ["SeriesClassificationTask"]


class SeriesClassificationTask(Task):
    """Binary classification of whole DICOM series (e.g. "contains a nodule").

    Every slice is kept: series of different lengths are padded in the batch and their
    lengths carried to the network (`collate_series`), which packs them (`SeriesGRU`) or
    masks the padding (`SliceMax`). Metrics are the classification task's, per series.
    Run-config keys: `model`, `image-size`, `val-fraction` and `series-gru-hidden`.
    """

    name: ClassVar[str] = "series"
    table_metrics: ClassVar[tuple[str, ...]] = ClassificationTask.table_metrics

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.image_size = int(config.option("image-size"))
        self.network = str(config.option("model"))
        self.val_fraction = float(config.option("val-fraction"))
        self.hidden = int(config.option("series-gru-hidden"))
        if str(config.option("dp")) == "dp-sgd":
            raise ConfigError(
                "dp = 'dp-sgd' clips each example's gradient, and task 'series' runs one "
                "example's slices as a batch of their own (and a GRU Opacus does not "
                "support as is): use dp = 'client' with task 'series'"
            )

    def build_model(self) -> nn.Module:
        """`SeriesGRU` for ``model = cnn-gru``; else the image classifier in `SliceMax`."""
        torch.manual_seed(self.config.seed)
        if self.network == "cnn-gru":
            return SeriesGRU(in_channels=1, num_classes=2, hidden=self.hidden)
        slice_config = RunConfig.from_mapping({**self.config.options, "task": "classification"})
        return SliceMax(ClassificationTask(slice_config).build_model())

    def _transforms(self, train: bool) -> Compose:
        steps: list[Any] = [
            LoadSeriesd(),
            ScaleByModalityd("image"),
            # In-plane only: -1 keeps every slice of the series.
            Resized("image", spatial_size=(self.image_size, self.image_size, -1)),
            EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
        ]
        if train:
            # One flip and one noise draw for the whole series: its slices stay aligned.
            steps += [
                Untracked(RandFlipd("image", prob=0.5, spatial_axis=0)),
                Untracked(RandFlipd("image", prob=0.5, spatial_axis=1)),
                Untracked(RandGaussianNoised("image", prob=0.3, std=0.02)),
                EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
            ]
        return Compose(steps)

    def load_site(self, site_dir: Path, cache_dir: Path | None = None) -> SiteData:
        series, counts, labels = self._labelled(site_dir)
        train, val = split_by_patient(
            series, lambda s: s.patient_key, self.val_fraction, self.config.seed
        )
        if not train:
            raise DataError("site needs series of at least 2 patients (one for validation)")
        return SiteData(
            name=site_dir.name,
            train=self._dataset(series_items(train, labels), True, cache_dir),
            val=self._dataset(series_items(val, labels), False, cache_dir),
            report=counts,
            extras={"class_weights": class_weights([labels[s.uid] for s in train])},
        )

    def labelled_dataset(self, site_dir: Path) -> Any:
        """Every usable labelled series of a folder, evaluation transforms, no split.

        For scoring a model on a held-out folder (a benchmark's test site) with `evaluate`
        (as ``SiteData.val``).
        """
        series, _, labels = self._labelled(site_dir)
        return self._dataset(series_items(series, labels), False, None)

    def _labelled(
        self, site_dir: Path
    ) -> tuple[list[SeriesRecord], dict[str, int], dict[str, int]]:
        """Usable labelled series, the site report's counts (safe to send), the labels."""
        series, report = index_series(site_dir)
        report.require_usable()
        labels = read_label_manifest(
            site_dir, key="series_instance_uid", filename=SERIES_LABELS_FILE
        )
        labelled = [s for s in series if s.uid in labels]
        if not labelled:
            raise DataError(
                "site has no usable labelled series: check `medfleet data check` and that "
                f"{SERIES_LABELS_FILE} lists the series' Series Instance UIDs"
            )
        counts = dict(report.summary())
        counts["unlabelled_series"] = len(series) - len(labelled)
        counts.update(label_summary(labels, [s.uid for s in series]))
        return labelled, counts, labels

    def _dataset(self, items: list[dict[str, Any]], train: bool, cache_dir: Path | None) -> Any:
        """A MONAI dataset of series items; each series is decoded once per process."""
        transform = self._transforms(train)
        if cache_dir is not None:
            # On-disk cache: a site daemon's later runs skip decoding. The items are the
            # cache key, so they name the input size of the cached volumes.
            keyed = [{**item, "cache_key": f"series-{self.image_size}"} for item in items]
            return PersistentDataset(keyed, transform, cache_dir=cache_dir)
        return CacheDataset(
            items, transform, cache_rate=1.0, num_workers=0, progress=False, copy_cache=False
        )

    def train_loader(self, data: SiteData, settings: TrainSettings) -> Iterable[Any]:
        """Shuffled batches of `batch-size` series, padded by `collate_series`."""
        return DataLoader(
            data.train,
            batch_size=settings.batch_size,
            shuffle=True,
            collate_fn=collate_series,
            pin_memory=settings.device.type == "cuda",
        )

    def batch_loss(
        self, model: nn.Module, batch: Any, data: SiteData, settings: TrainSettings
    ) -> tuple[torch.Tensor, int]:
        """Class-weighted cross-entropy of one batch of series and their labels."""
        images = batch["image"].to(settings.device, non_blocking=True)
        targets = batch["label"].to(settings.device, non_blocking=True)
        weights = torch.as_tensor(data.extras["class_weights"], dtype=torch.float32)
        logits = model(images, batch["lengths"])
        loss = F.cross_entropy(logits, targets, weight=weights.to(settings.device))
        return loss, len(targets)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        return score_logits(_logits(model, data.val, settings), settings.device)

    def aggregate_metrics(
        self, results: Sequence[tuple[int, Mapping[str, Any]]]
    ) -> dict[str, float]:
        return pooled_classification_metrics(results)

    @torch.no_grad()
    def predict(self, model: nn.Module, source: Path, settings: TrainSettings) -> Predictions:
        """The probability of class 1 of every usable series under `source` (no labels).

        Keys are Series Instance UIDs in UID order; values ``probability`` and
        ``slices`` (the series' slice count). Files that are no usable image, and series
        that do not form one volume, are counted in ``inputs``.
        """
        series, report = index_series(source)
        if not series:
            raise DataError(
                "no usable DICOM series to predict on: check the folder with `medfleet data check`"
            )
        dataset = Dataset(series_items(series), self._transforms(train=False))
        probs = [
            torch.softmax(out, dim=1)[:, 1].cpu() for out, _ in _logits(model, dataset, settings)
        ]
        items = [
            Prediction(record.uid, {"probability": float(p), "slices": float(len(record.paths))})
            for record, p in zip(series, torch.cat(probs), strict=True)
        ]
        return Predictions(items, dict(report.summary()))

    def example_input(self, batch: int = 2) -> torch.Tensor:
        raise ConfigError(
            "task 'series' takes a batch of series and their lengths: `medfleet export` "
            "writes single-input networks only"
        )

    def input_spec(self) -> dict[str, Any]:
        return {
            "kind": "DICOM series of 2D slices, one channel, ordered along the slice normal",
            "size": [self.image_size, self.image_size],
            "resize": "each slice bilinear to size (aspect not kept); every slice kept",
            "intensity": "CT: HU window [-1000, 400] to [0, 1]; other modalities: "
            "0.5-99.5 percentiles of the series to [0, 1]",
            "output": "softmax over (negative, positive) per series; probability = class 1",
        }


def _logits(
    model: nn.Module, dataset: Any, settings: TrainSettings
) -> Iterator[tuple[torch.Tensor, dict[str, Any]]]:
    """The model's series logits of each batch of `dataset` in eval mode, with the batch."""
    model.to(settings.device).eval()
    for batch in DataLoader(dataset, batch_size=settings.batch_size, collate_fn=collate_series):
        yield model(batch["image"].to(settings.device), batch["lengths"]), batch
