"""Segmentation inference on unlabelled volumes: label maps and per-class volumes in mm3."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import NormalizeIntensity

from shared.dicom import index_folder
from shared.errors import DataError
from shared.progress import track
from shared.tasks.base import Prediction, Predictions
from shared.volumes.nifti import list_nifti, read_nifti
from shared.volumes.series import load_series

__all__ = [
    "UnlabelledVolume",
    "VolumeCounts",
    "class_volumes",
    "predict_volumes",
    "read_volumes",
    "write_seg_predictions",
]

logger = logging.getLogger("medfleet.predict")

#: ``(1, 1, H, W, D) image -> (1, K, H, W, D) logits`` (the task's sliding window).
Infer = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class UnlabelledVolume:
    """One image volume to segment: its key, float32 (H, W, D) or (C, H, W, D) voxels, spacing.

    `references` locate the volume for its outputs: the DICOM slice headers in volume
    order (which a DICOM SEG references), or for NIfTI the 4x4 voxel-to-RAS affine.
    """

    key: str
    image: np.ndarray
    spacing: tuple[float, float, float]
    references: tuple[Any, ...] = ()


@dataclass
class VolumeCounts:
    """What `read_volumes` found: the input counts of `medfleet data check`, and series."""

    inputs: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, count: int = 1) -> None:
        self.inputs[key] = self.inputs.get(key, 0) + count


def read_volumes(source: Path, counts: VolumeCounts | None = None) -> Iterator[UnlabelledVolume]:
    """Yield the volumes under `source`, one at a time (no labels needed).

    A folder of ``.nii``/``.nii.gz`` files (or one holding ``imagesTr``) is read as
    NIfTI volumes keyed by file stem; any other folder is walked as DICOM, one volume
    per series keyed by its Series Instance UID. A series that does not form one
    regular volume is skipped and counted (``series_skipped``) in `counts` and a log
    line (no identifiers); so are the files `medfleet data check` would skip.
    """
    counts = counts if counts is not None else VolumeCounts()
    source = Path(source)
    nifti_dir = source / "imagesTr" if (source / "imagesTr").is_dir() else source
    nifti = list_nifti(nifti_dir) if nifti_dir.is_dir() else {}
    if nifti:
        counts.add("files", len(nifti))
        for name, path in nifti.items():
            volume = read_nifti(path)
            counts.add("volumes")
            image = volume.array.astype(np.float32)
            yield UnlabelledVolume(name, image, volume.spacing, (volume.affine,))
        return
    records, report = index_folder(source)
    counts.inputs.update(report.summary())
    series: dict[str, list[Path]] = defaultdict(list)
    for record in records:
        series[record.series_instance_uid].append(record.path)
    skipped = 0
    for uid in sorted(series):
        try:
            loaded = load_series(series[uid])
        except DataError:
            skipped += 1
            continue
        counts.add("volumes")
        yield UnlabelledVolume(uid, loaded.array, loaded.stack.spacing, loaded.headers)
    counts.add("series_skipped", skipped)
    if skipped:
        logger.warning("%d DICOM series skipped: they do not form one regular volume", skipped)


def class_volumes(
    labels: np.ndarray, spacing: tuple[float, float, float], num_classes: int
) -> dict[str, float]:
    """``volume_mm3_<k>`` of every foreground class k: voxel count times voxel volume."""
    counts = np.bincount(labels.ravel(), minlength=num_classes)
    voxel = float(np.prod(spacing))
    return {f"volume_mm3_{k}": float(counts[k]) * voxel for k in range(1, num_classes)}


def predict_volumes(
    volumes: Iterator[UnlabelledVolume], infer: Infer, num_classes: int, device: torch.device
) -> list[Prediction]:
    """Segment each volume: argmax label map (uint8, H x W x D) and class volumes.

    Intensities are normalised as in evaluation (z-score over the non-zero voxels). Each
    prediction references the volume's slice headers (for its DICOM SEG).
    """
    normalise = NormalizeIntensity(nonzero=True, channel_wise=True)
    predictions = []
    for volume in track(volumes, "segmenting volumes"):
        # (H, W, D) for one series, (C, H, W, D) for the series of a study.
        channels = volume.image if volume.image.ndim == 4 else volume.image[np.newaxis]
        image = torch.as_tensor(normalise(channels), dtype=torch.float32)
        with torch.no_grad():
            logits = infer(image[None].to(device))
        labels = torch.argmax(logits[0], dim=0).cpu().numpy().astype(np.uint8)
        values = class_volumes(labels, volume.spacing, num_classes)
        predictions.append(Prediction(volume.key, values, labels, volume.references))
    if not predictions:
        raise DataError(
            "no volumes to segment: give a folder of DICOM series or NIfTI images "
            "(check it with `medfleet data check`)"
        )
    return predictions


def write_seg_predictions(
    predictions: Predictions, out_dir: Path, class_names: tuple[str, ...], algorithm: str
) -> tuple[list[Path], list[Path]]:
    """Write a DICOM SEG per DICOM-sourced prediction, and a NIfTI label map per other one.

    SEGs go to ``seg/<SeriesInstanceUID>.dcm``, referencing the source series (opened
    over it by 3D Slicer or OHIF); volumes read from NIfTI give ``labels/<name>.nii.gz``
    on the source's grid (its affine). Returns (SEG files, NIfTI files).
    """
    import nibabel as nib

    from shared.volumes.seg_write import write_seg

    segs, maps = [], []
    for prediction in predictions:
        if prediction.array is None or not prediction.references:
            continue
        first = prediction.references[0]
        if isinstance(first, np.ndarray):
            path = Path(out_dir) / "labels" / f"{prediction.key}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(prediction.array, first), str(path))
            maps.append(path)
            continue
        path = Path(out_dir) / "seg" / f"{prediction.key}.dcm"
        headers = list(prediction.references)
        write_seg(prediction.array, headers, list(class_names), path, algorithm_name=algorithm)
        segs.append(path)
    return segs, maps
