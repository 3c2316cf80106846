"""Lung-nodule detection task: MONAI's RetinaNet on CT series with LUNA16-style annotations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, PersistentDataset
from monai.data.utils import no_collation
from torch import nn

from shared.config import RunConfig
from shared.data import split_by_patient
from shared.data.listing import file_signature
from shared.errors import DataError
from shared.tasks.base import Predictions, RoundResult, SiteData, Task, TrainSettings
from shared.tasks.det_data import DetCase, eval_transforms, index_detection_site, train_transforms
from shared.tasks.det_infer import detect, loss_mode, slice_items
from shared.tasks.det_metrics import ScanResult, aggregate_detection_metrics, site_metrics
from shared.tasks.det_network import build_detector
from shared.tasks.detection_options import DetOptions

__all__ = ["DetectionTask"]


class DetectionTask(Task):
    """Lung-nodule detection in CT series with MONAI's RetinaNet (one class: nodule).

    A site holds CT series and ``annotations.csv`` (LUNA16: ``seriesuid, coordX, coordY,
    coordZ, diameter_mm`` in patient mm), mapped to voxel boxes through each series'
    geometry. Trains on whole volumes (or on axial slices with ``det-spatial-dims = 2``)
    and scores each validation scan: LUNA16 FROC (sensitivity at 1/8 to 8 false positives
    per scan, CPM) and mAP at IoU 0.1. Run-config keys: see `DetOptions`.
    """

    name: ClassVar[str] = "detection"
    table_metrics: ClassVar[tuple[str, ...]] = (
        "train_loss",
        "loss",
        "cpm",
        "sens_at_1",
        "sens_at_4",
        "map",
    )

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.options = DetOptions.from_options(config.options)

    def build_model(self) -> nn.Module:
        return build_detector(self.options, self.config.seed)

    def load_site(self, site_dir: Path, cache_dir: Path | None = None) -> SiteData:
        cases, report = index_detection_site(site_dir)
        if not cases:
            raise DataError(
                "site has no usable CT series: it needs DICOM series that each form one "
                "volume, next to annotations.csv (see `medfleet data check`)"
            )
        train, val = split_by_patient(
            cases, lambda c: c.patient_key, self.options.val_fraction, self.config.seed
        )
        if not train or not val:
            raise DataError("site needs series of at least 2 patients (one for validation)")
        return SiteData(
            name=site_dir.name,
            train=self._dataset(train, "train", cache_dir),
            val=self._dataset(val, "eval", cache_dir),
            report=report,
            extras={"val_spacing": [_spacing(c.affine) for c in val]},
        )

    def _dataset(self, cases: Sequence[DetCase], role: str, cache_dir: Path | None) -> Any:
        transform = train_transforms() if role == "train" else eval_transforms()
        items = [
            {"case": case, "signature": file_signature(*case.paths), "pipeline": role}
            for case in cases
        ]
        if cache_dir is not None:
            return PersistentDataset(items, transform, cache_dir=cache_dir)
        return CacheDataset(items, transform, cache_rate=1.0, num_workers=0, progress=False)

    def train_loader(self, data: SiteData, settings: TrainSettings) -> Iterable[Any]:
        """Shuffled lists of volumes (or axial slices), each with its own boxes."""
        source = data.train
        if self.options.spatial_dims == 2:
            # MONAI's loader seeds the volumes' random flips, as it does for 3D batches.
            volumes = DataLoader(data.train, batch_size=1, collate_fn=no_collation)
            source = slice_items(item for batch in volumes for item in batch)
        return DataLoader(
            source, batch_size=settings.batch_size, shuffle=True, collate_fn=no_collation
        )

    def batch_loss(
        self, model: nn.Module, batch: Any, data: SiteData, settings: TrainSettings
    ) -> tuple[torch.Tensor, int]:
        """RetinaNet's classification + box-regression loss of one list of images."""
        images = [item["image"].to(settings.device) for item in batch]
        targets = [
            {
                "boxes": item["boxes"].to(settings.device),
                "labels": item["labels"].to(settings.device),
            }
            for item in batch
        ]
        losses = model(images, targets)
        return losses["classification"] + losses["box_regression"], len(images)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        model.to(settings.device)
        scans, losses = [], []
        for index in range(len(data.val)):
            item = data.val[index]
            spacing = data.extras["val_spacing"][index]
            boxes, scores = detect(model, item["image"], self.options, settings.device, spacing)
            losses.append(self._loss(model, item, settings))
            scans.append(
                ScanResult(
                    boxes, scores, item["boxes"].numpy(), spacing, tuple(item["image"].shape[1:])
                )
            )
        if not scans:
            return RoundResult(0, {})
        metrics = site_metrics(scans)
        metrics["loss"] = float(np.mean(losses))
        return RoundResult(len(scans), metrics)

    def _loss(self, model: nn.Module, item: Mapping[str, Any], settings: TrainSettings) -> float:
        """The training loss of one validation volume (of its axial slices in 2D)."""
        parts = slice_items([item]) if self.options.spatial_dims == 2 else [item]
        images = [part["image"].to(settings.device) for part in parts]
        targets = [
            {"boxes": p["boxes"].to(settings.device), "labels": p["labels"].to(settings.device)}
            for p in parts
        ]
        with loss_mode(model):
            losses = model(images, targets)
        return float(losses["classification"] + losses["box_regression"])

    def aggregate_metrics(
        self, results: Sequence[tuple[int, Mapping[str, Any]]]
    ) -> dict[str, float]:
        return aggregate_detection_metrics(results)

    def predict(self, model: nn.Module, source: Path, settings: TrainSettings) -> Predictions:
        """Detect nodules in every CT series under `source` (no annotations needed)."""
        from shared.tasks.det_predict import predict_series

        return predict_series(model, Path(source), self.options, settings.device)

    def write_predictions(
        self, model: nn.Module, predictions: Predictions, out_dir: Path, settings: TrainSettings
    ) -> dict[str, list[str]]:
        """``detections.json``, a DICOM SR per series and a PNG per box's central slice."""
        from shared.tasks.det_predict import write_detections

        return write_detections(predictions, Path(out_dir))

    def example_input(self, batch: int = 2) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.config.seed)
        size = (64, 64, 32)[: self.options.spatial_dims]
        return torch.rand(batch, 1, *size, generator=generator)

    def input_spec(self) -> dict[str, Any]:
        dims = self.options.spatial_dims
        return {
            "kind": f"{dims}D CT ({'whole volume' if dims == 3 else 'axial slices'}), one channel",
            "intensity": "HU clipped to [-1024, 400] and scaled to [0, 1]",
            "classes": ["nodule"],
            "boxes": "voxel xyzxyz (MONAI StandardMode); predict reports patient mm (LPS)",
        }


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    sizes = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    return (float(sizes[0]), float(sizes[1]), float(sizes[2]))
