"""Lesion classification task: LesionCNN over a site's DICOM images with labels.csv."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset
from monai.transforms import (
    Compose,
    EnsureTyped,
    RandFlipd,
    RandGaussianNoised,
    Resized,
)
from torch import nn

from shared.config import RunConfig
from shared.data import read_label_manifest, split_by_patient
from shared.data.intensity import ScaleByModalityd
from shared.data.listing import file_signature
from shared.data.manifest import label_summary
from shared.data.untracked import Untracked
from shared.dicom import ImageRecord, index_folder
from shared.dicom.transforms import LoadDicomImaged
from shared.errors import ConfigError, DataError
from shared.metrics import classification_metrics, pooled_classification_metrics
from shared.models import LesionCNN
from shared.progress import track
from shared.tasks.base import (
    Prediction,
    Predictions,
    RoundResult,
    SiteData,
    Task,
    TrainSettings,
)
from shared.tasks.classification_options import SERIES_NETWORKS

__all__ = ["ClassificationTask", "class_weights", "score_logits"]


#: Decoding and intensity scaling, the first steps of every classification pipeline.
_LOAD_STEPS = (LoadDicomImaged(keys="image"), ScaleByModalityd("image"))


class ClassificationTask(Task):
    """Binary lesion classification (0 benign, 1 malignant) on 2D DICOM images.

    Run-config options: see `shared.tasks.classification_options`.
    """

    name: ClassVar[str] = "classification"
    table_metrics: ClassVar[tuple[str, ...]] = (
        "train_loss",
        "loss",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "auc",
    )

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.image_size = int(config.option("image-size"))
        self.network = str(config.option("model"))
        if self.network in SERIES_NETWORKS:
            raise ConfigError(
                f"config key 'model' = '{self.network}' reads a whole series of slices: "
                "use task 'series' (labels per series in series_labels.csv), or model "
                "'lesion-cnn' or 'resnet18' for single images"
            )
        self.val_fraction = float(config.option("val-fraction"))

    def build_model(self) -> nn.Module:
        """LesionCNN, or MONAI's ResNet-18 (`model = resnet18`).

        Below 96 pixels the ResNet takes the small-image stem that MedMNIST's ResNet-18
        (28) uses (3x3 stride-1 first convolution, no max pooling); from 96 up, the
        ImageNet stem (7x7 stride 2, max pooling).
        """
        torch.manual_seed(self.config.seed)
        if self.network == "resnet18":
            from monai.networks.nets import resnet18

            small = self.image_size < 96
            return resnet18(
                spatial_dims=2,
                n_input_channels=1,
                num_classes=2,
                conv1_t_size=3 if small else 7,
                conv1_t_stride=1 if small else 2,
                no_max_pool=small,
            )
        return LesionCNN(in_channels=1, num_classes=2)

    def _transforms(self, train: bool) -> Compose:
        steps: list[Any] = [*_LOAD_STEPS, *self._input_steps()]
        if train:
            steps += [
                Untracked(RandFlipd("image", prob=0.5, spatial_axis=0)),
                Untracked(RandFlipd("image", prob=0.5, spatial_axis=1)),
                Untracked(RandGaussianNoised("image", prob=0.3, std=0.02)),
                EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
            ]
        return Compose(steps)

    def _input_steps(self) -> list[Any]:
        """From the loaded, scaled image (`_LOAD_STEPS`) to the network's input."""
        return [
            Resized("image", spatial_size=(self.image_size, self.image_size)),
            # Cached as a plain tensor: augmentation needs no MetaTensor history.
            EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
        ]

    def load_site(self, site_dir: Path, cache_dir: Path | None = None) -> SiteData:
        records, counts, labels = self._labelled(site_dir)
        train, val = split_by_patient(
            records, lambda r: r.patient_key, self.val_fraction, self.config.seed
        )
        if not train:
            raise DataError("site needs images of at least 2 patients (one for validation)")
        return SiteData(
            name=site_dir.name,
            train=self.make_dataset(_items(train, labels), True, cache_dir),
            val=self.make_dataset(_items(val, labels), False, cache_dir),
            report=counts,
            extras={"class_weights": class_weights([labels[r.sop_instance_uid] for r in train])},
        )

    def labelled_items(self, site_dir: Path) -> list[dict[str, Any]]:
        """Every usable labelled image of a folder as a dataset item (no split)."""
        records, _, labels = self._labelled(site_dir)
        return _items(records, labels)

    def _labelled(self, site_dir: Path) -> tuple[list[ImageRecord], dict[str, int], dict[str, int]]:
        """Usable labelled images, the site report's counts (safe to send), the labels."""
        records, report = index_folder(site_dir)
        report.require_usable()
        labels = read_label_manifest(site_dir)
        labelled = [r for r in records if r.sop_instance_uid in labels]
        if not labelled:
            raise DataError(
                "site has no usable labelled images: check `medfleet data check` and that "
                "labels.csv lists the images' SOP Instance UIDs"
            )
        counts = dict(report.summary())
        counts["unlabelled"] = report.usable - len(labelled)
        counts.update(label_summary(labels, [r.sop_instance_uid for r in records]))
        return labelled, counts, labels

    def make_dataset(
        self, items: list[dict[str, Any]], train: bool, cache_dir: Path | None = None
    ) -> Any:
        """A MONAI dataset of `items` with the train or evaluation transforms, cached."""
        transform = self._transforms(train)
        if cache_dir is not None:
            # On-disk cache: a site daemon's later runs skip decoding entirely. The items
            # are the cache key, so they name the input size the cached arrays have.
            keyed = [{**item, "cache_key": f"classification-{self.image_size}"} for item in items]
            return PersistentDataset(keyed, transform, cache_dir=cache_dir)
        # No copy of the cached item per access: the augmentation builds new dicts and
        # tensors and never writes into its input.
        return CacheDataset(
            items, transform, cache_rate=1.0, num_workers=0, progress=False, copy_cache=False
        )

    def batch_loss(
        self, model: nn.Module, batch: Any, data: SiteData, settings: TrainSettings
    ) -> tuple[torch.Tensor, int]:
        """Class-weighted cross-entropy of one batch of images and labels."""
        images = batch["image"].to(settings.device, non_blocking=True)
        targets = batch["label"].long().to(settings.device, non_blocking=True)
        # Inverse-frequency weights: each site's prevalence differs (non-IID), and without
        # them a rare malignant class is never predicted at the 0.5 threshold.
        weights = torch.as_tensor(data.extras["class_weights"], dtype=torch.float32)
        loss = F.cross_entropy(model(images), targets, weight=weights.to(settings.device))
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
        """The probability of class 1 (malignant) of every usable image under `source`.

        Needs no labels.csv. Images get the evaluation transforms; keys are their SOP
        Instance UIDs, in path order; values ``{"probability": p}``; unusable files are
        counted in ``inputs`` as `medfleet data check` counts them.
        """
        records, report = index_folder(source)
        if not records:
            raise DataError(
                "no usable DICOM images to predict on: check the folder with `medfleet data check`"
            )
        dataset = Dataset(_items(records), self._transforms(train=False))
        probs = [
            torch.softmax(out, dim=1)[:, 1].cpu() for out, _ in _logits(model, dataset, settings)
        ]
        items = [
            Prediction(record.sop_instance_uid, {"probability": float(p)}, references=(record,))
            for record, p in zip(records, torch.cat(probs), strict=True)
        ]
        return Predictions(items, dict(report.summary()))

    def write_predictions(
        self, model: nn.Module, predictions: Predictions, out_dir: Path, settings: TrainSettings
    ) -> dict[str, list[str]]:
        """The probability tables, and a Grad-CAM overlay PNG per image in ``gradcam/``.

        Each heatmap explains class 1 (malignant) at the image's own size, over the
        image as the network sees its intensities (before resizing).
        """
        from shared.predict.gradcam import class_activation_maps, save_overlay

        files = super().write_predictions(model, predictions, out_dir, settings)
        # Each image is decoded once: the overlay shows it as loaded and scaled, and the
        # network sees it resized from there, as in evaluation.
        load, to_input = Compose(list(_LOAD_STEPS)), Compose(self._input_steps())
        model.to(settings.device).eval()
        overlays = []
        for prediction in track(predictions, "Grad-CAM overlays"):
            records = [r for r in prediction.references if isinstance(r, ImageRecord)]
            if not records:
                continue
            item = _items(records[:1])[0]
            loaded = load(item)
            shown = np.asarray(loaded["image"])[0]
            image = to_input(loaded)["image"][None].to(settings.device)
            heatmap = class_activation_maps(model, image, self.gradcam_layer, 1, shown.shape)[0]
            path = Path(out_dir) / "gradcam" / f"{prediction.key}.png"
            overlays.append(str(save_overlay(shown, heatmap, path)))
        return {**files, "gradcam": overlays}

    @property
    def gradcam_layer(self) -> str:
        """The layer Grad-CAM explains: the last convolutional block of the network."""
        return "layer3" if self.network == "resnet18" else "features.8"

    def example_input(self, batch: int = 2) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.config.seed)
        return torch.rand(batch, 1, self.image_size, self.image_size, generator=generator)

    def input_spec(self) -> dict[str, Any]:
        return {
            "kind": "2D DICOM image, one channel",
            "size": [self.image_size, self.image_size],
            "resize": "bilinear to size (aspect not kept)",
            "intensity": "CT: HU window [-1000, 400] to [0, 1]; other modalities: "
            "0.5-99.5 percentiles to [0, 1]",
            "output": "softmax over (benign, malignant); probability = class 1",
        }


def class_weights(labels: list[int], num_classes: int = 2) -> list[float]:
    """Inverse-frequency class weights (1.0 for a class absent from `labels`)."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.tolist()


def _items(
    records: list[ImageRecord], labels: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """Dataset items of `records`, with their labels when `labels` is given."""
    items = []
    for record in records:
        item: dict[str, Any] = {
            "image": str(record.path),
            "modality": record.modality,
            # Part of PersistentDataset's cache key: a changed file is decoded again.
            "signature": file_signature(record.path),
        }
        if labels is not None:
            item["label"] = labels[record.sop_instance_uid]
        items.append(item)
    return items


def score_logits(
    batches: Iterable[tuple[torch.Tensor, dict[str, Any]]], device: torch.device
) -> RoundResult:
    """Mean cross-entropy and the classification metrics of `batches` (logits, batch).

    Shared by the image and the series classifiers; metrics as `classification_metrics`.
    """
    loss, labels, probs = 0.0, [], []
    for logits, batch in batches:
        targets = batch["label"].long().to(device)
        loss += float(F.cross_entropy(logits, targets, reduction="sum"))
        labels.append(targets.cpu().numpy())
        probs.append(torch.softmax(logits, dim=1)[:, 1].cpu().numpy())
    if not labels:
        return RoundResult(0, {})
    y, p = np.concatenate(labels), np.concatenate(probs)
    metrics = classification_metrics(y, p)
    metrics["loss"] = loss / len(y)
    return RoundResult(len(y), metrics)


def _logits(
    model: nn.Module, dataset: Any, settings: TrainSettings
) -> Iterator[tuple[torch.Tensor, dict[str, Any]]]:
    """The model's logits of each batch of `dataset` in eval mode, with the batch."""
    model.to(settings.device).eval()
    for batch in DataLoader(dataset, batch_size=settings.batch_size):
        yield model(batch["image"].to(settings.device)), batch
