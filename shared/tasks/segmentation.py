"""Segmentation task: a MONAI U-Net trained on patches, evaluated by sliding window."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from monai.data import CacheDataset, PersistentDataset
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from torch import nn

from shared.config import RunConfig
from shared.data import split_by_patient
from shared.data.listing import file_signature
from shared.errors import DataError
from shared.tasks.base import Predictions, RoundResult, SiteData, Task, TrainSettings
from shared.tasks.seg_metrics import case_scores, summarise_scores
from shared.tasks.seg_options import SegOptions
from shared.tasks.seg_predict import (
    VolumeCounts,
    predict_volumes,
    read_volumes,
    write_seg_predictions,
)
from shared.tasks.seg_transforms import eval_transforms, train_transforms
from shared.volumes import SegCase, index_segmentation_site

__all__ = ["SegmentationTask"]


class SegmentationTask(Task):
    """Multi-class segmentation of MR or CT volumes with a MONAI U-Net.

    Trains on random 3D patches (or 2D axial slices) with Dice + cross-entropy and scores
    whole volumes by sliding-window inference: Dice and HD95 (mm) per class and mean.
    By default the U-Net uses instance norm without running statistics, so every state
    entry is a learned weight that FedAvg and SecAgg+ treat alike; ``seg-norm = batch``
    gives it batch norm for FedBN. Run-config keys: see `SegOptions`.
    """

    name: ClassVar[str] = "segmentation"
    table_metrics: ClassVar[tuple[str, ...]] = (
        "train_loss",
        "loss",
        "dice",
        "dice_1",
        "dice_2",
        "hd95",
    )

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.options = SegOptions.from_options(config.options)

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.config.seed)
        return UNet(
            spatial_dims=self.options.spatial_dims,
            in_channels=self.options.in_channels,
            out_channels=self.options.num_classes,
            channels=self.options.channels,
            strides=self.options.strides,
            num_res_units=self.options.res_units,
            norm=self.options.norm,
        )

    def loss_function(self) -> nn.Module:
        """Dice + cross-entropy on logits against class-index labels."""
        return DiceCELoss(to_onehot_y=True, softmax=True)

    def infer(self, model: nn.Module, image: torch.Tensor) -> torch.Tensor:
        """Logits (1, K, H, W, D) of a whole volume (1, C, H, W, D) by sliding window.

        In 2D mode the axial slices (last axis) are windowed as one batch and the
        predictions stacked back into a volume.
        """
        roi = self.options.roi_size
        if self.options.spatial_dims == 3:
            return _as_tensor(sliding_window_inference(image, roi, 4, model, overlap=0.25))
        slices = image[0].permute(3, 0, 1, 2)  # (D, C, H, W)
        logits = _as_tensor(sliding_window_inference(slices, roi, 32, model, overlap=0.25))
        return logits.permute(1, 2, 3, 0)[None]

    def load_site(self, site_dir: Path, cache_dir: Path | None = None) -> SiteData:
        cases, report = index_segmentation_site(site_dir, self.options.inputs)
        if not cases:
            raise DataError(
                "site has no usable segmentation cases: it needs image series with a DICOM "
                "SEG each, or imagesTr/labelsTr NIfTI pairs (see `medfleet data check`)"
            )
        train, val = split_by_patient(
            cases, lambda c: c.patient_key, self.options.val_fraction, self.config.seed
        )
        if not train or not val:
            raise DataError("site needs cases of at least 2 patients (one for validation)")
        return SiteData(
            name=site_dir.name,
            train=self._dataset(train, "train", cache_dir),
            val=self._dataset(val, "eval", cache_dir),
            report=report.summary(),
        )

    def _dataset(self, cases: Sequence[SegCase], role: str, cache_dir: Path | None) -> Any:
        train = role == "train"
        transform = train_transforms(self.options) if train else eval_transforms()
        # The pipeline tag keeps a case's train and eval forms apart in the on-disk cache
        # (its key is the item), e.g. when a new seed moves the case across the split.
        pipeline = f"train:{self.options}" if train else "eval"
        items = [
            {
                "case": case,
                "signature": file_signature(*case.files),
                "pipeline": pipeline,
            }
            for case in cases
        ]
        if cache_dir is not None:
            # On-disk cache: a site daemon's later runs skip decoding entirely.
            return PersistentDataset(items, transform, cache_dir=cache_dir)
        return CacheDataset(items, transform, cache_rate=1.0, num_workers=0, progress=False)

    def batch_loss(
        self, model: nn.Module, batch: Any, data: SiteData, settings: TrainSettings
    ) -> tuple[torch.Tensor, int]:
        """Dice + cross-entropy of one batch of patches (or slices) and their labels."""
        images = batch["image"].to(settings.device, non_blocking=True)
        labels = batch["label"].to(settings.device, non_blocking=True)
        return self.loss_function()(model(images), labels), len(images)

    def make_optimizer(self, model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=1e-5)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        model.to(settings.device).eval()
        loss_fn = self.loss_function()
        losses, dice, hd95 = [], [], []
        for index in range(len(data.val)):
            item = data.val[index]
            image = item["image"][None].to(settings.device)
            label = item["label"][None].to(settings.device)
            logits = self.infer(model, image)
            losses.append(float(loss_fn(logits, label)))
            pred = torch.argmax(logits, dim=1, keepdim=True)
            case_dice, case_hd = case_scores(
                pred, label, self.options.num_classes, _as_spacing(item.get("spacing"))
            )
            dice.append(case_dice)
            hd95.append(case_hd)
        if not losses:
            return RoundResult(0, {})
        metrics = summarise_scores(dice, hd95)
        metrics["loss"] = float(np.mean(losses))
        return RoundResult(len(losses), metrics)

    def predict(self, model: nn.Module, source: Path, settings: TrainSettings) -> Predictions:
        """Segment every volume under `source` (DICOM series or NIfTI files, no labels).

        Each `Prediction` holds the argmax label map (uint8, H x W x D) of the sliding
        window and ``volume_mm3_<k>`` of each foreground class; see `seg_predict`. With
        `seg-inputs`, one prediction per study holding every input, on the grid of its
        reference series (see `seg_studies`).
        """
        model.to(settings.device).eval()
        counts = VolumeCounts()
        if self.options.inputs:
            from shared.tasks.seg_studies import read_study_volumes

            volumes = read_study_volumes(source, self.options.inputs, counts)
        else:
            volumes = read_volumes(source, counts)
        items = predict_volumes(
            volumes,
            lambda image: self.infer(model, image),
            self.options.num_classes,
            settings.device,
        )
        return Predictions(items, counts.inputs)

    def write_predictions(
        self, model: nn.Module, predictions: Predictions, out_dir: Path, settings: TrainSettings
    ) -> dict[str, list[str]]:
        """The volume tables (mm3 per class), a DICOM SEG per series, NIfTI label maps."""
        files = super().write_predictions(model, predictions, out_dir, settings)
        segs, maps = write_seg_predictions(
            predictions, out_dir, self.options.class_names, "MedFleet U-Net"
        )
        return {**files, "seg": [str(p) for p in segs], "labels": [str(p) for p in maps]}

    def example_input(self, batch: int = 2) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.config.seed)
        channels = self.options.in_channels
        return torch.randn(batch, channels, *self.options.roi_size, generator=generator)

    def input_spec(self) -> dict[str, Any]:
        opts = self.options
        return {
            "kind": f"{opts.spatial_dims}D volume, one channel (DICOM series or NIfTI)"
            if not opts.inputs
            else f"{opts.spatial_dims}D volume, one channel per series of a DICOM study, "
            "resampled onto the first",
            "series": [str(pattern) for pattern in opts.inputs],
            "patch": list(opts.roi_size),
            "inference": "sliding window over the whole volume, overlap 0.25",
            "intensity": "z-score over the non-zero voxels of each volume",
            "classes": ["background", *opts.class_names],
        }


def _as_tensor(output: Any) -> torch.Tensor:
    # sliding_window_inference returns a tensor for a network with one tensor output.
    if not isinstance(output, torch.Tensor):
        raise TypeError("the U-Net must return one tensor")
    return output


def _as_spacing(spacing: Any) -> list[float] | None:
    if spacing is None:
        return None
    return [float(s) for s in np.asarray(spacing, dtype=float).ravel()]
