"""Detection site data: CT series with their nodule boxes, and the MONAI loading transforms."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.apps.detection.transforms.dictionary import RandFlipBoxd
from monai.transforms import (
    Compose,
    EnsureTyped,
    MapTransform,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensityRanged,
)

from shared.dicom import ImageRecord, index_folder
from shared.errors import DataError
from shared.tasks.det_boxes import (
    AnnotationCounts,
    map_series_annotations,
    read_annotations,
)
from shared.volumes.case import case_key
from shared.volumes.geometry import stack_slices, voxel_to_patient
from shared.volumes.series import load_series, read_slice_headers

__all__ = [
    "HU_WINDOW",
    "DetCase",
    "LoadDetCased",
    "eval_transforms",
    "index_detection_site",
    "series_geometry",
    "train_transforms",
]

#: CT intensities scaled to [0, 1] over this HU range (lung to soft tissue), clipped.
HU_WINDOW = (-1024.0, 400.0)


@dataclass(frozen=True)
class DetCase:
    """One CT series of a site and its nodules' voxel boxes (site-local; never sent).

    `case_id` and `patient_key` are opaque hashes fit for splits; `uid` is the Series
    Instance UID, kept for predict's outputs only.
    """

    case_id: str
    patient_key: str
    uid: str
    paths: tuple[Path, ...]
    boxes: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]


def series_geometry(paths: list[Path]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine (voxel to LPS mm) and (x, y, z) shape of a series, from its headers only."""
    headers = read_slice_headers(paths)
    stack = stack_slices(headers)
    first = headers[stack.order[0]]
    shape = (int(first.Columns), int(first.Rows), len(headers))
    return voxel_to_patient(stack, [float(v) for v in first.ImagePositionPatient]), shape


def _group_ct(records: list[ImageRecord]) -> dict[str, list[ImageRecord]]:
    series: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        series[record.series_instance_uid].append(record)
    return series


def index_detection_site(root: Path) -> tuple[list[DetCase], dict[str, int]]:
    """Find a site's CT series and map its ``annotations.csv`` onto them.

    Every series that forms one regular volume is a case (with no boxes when no row
    names it); other series are skipped and counted (``series_skipped``). Rows naming
    no usable series or with a centre outside its volume are counted by reason.

    Returns
    -------
    cases : list[DetCase]
        Sorted by `case_id`.
    counts : dict[str, int]
        The `medfleet data check` counts plus ``series_skipped`` and the annotation
        counts (`AnnotationCounts.summary`); counts only, safe to send.
    """
    records, report = index_folder(Path(root))
    annotations, counts = read_annotations(Path(root))
    geometry: dict[str, tuple[np.ndarray, tuple[int, int, int]]] = {}
    members: dict[str, list[ImageRecord]] = {}
    skipped = 0
    for uid, group in sorted(_group_ct(records).items()):
        try:
            geometry[uid] = series_geometry([r.path for r in group])
        except DataError:
            skipped += 1
            continue
        members[uid] = group
    boxes = map_series_annotations(annotations, geometry, counts)
    cases = [
        DetCase(
            case_key(f"series:{uid}"),
            group[0].patient_key,
            uid,
            tuple(sorted(r.path for r in group)),
            boxes[uid],
            *geometry[uid],
        )  # fmt: skip
        for uid, group in members.items()
    ]
    summary = {**report.summary(), "series_skipped": skipped, **_count_summary(counts)}
    return sorted(cases, key=lambda case: case.case_id), summary


def _count_summary(counts: AnnotationCounts) -> dict[str, int]:
    return counts.summary()


class LoadDetCased(MapTransform):
    """Load ``data["case"]`` (a `DetCase`) into ``image`` (1, x, y, z) HU, boxes and labels.

    ``boxes`` are the case's voxel boxes (float32, N x 6), ``labels`` zeros (one class,
    int64). The case itself is dropped: PyTorch cannot batch it.
    """

    def __init__(self, case_key: str = "case") -> None:
        super().__init__(case_key)
        self.case_key = case_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        case: DetCase = out.pop(self.case_key)
        volume = load_series(case.paths)
        out["image"] = volume.array[np.newaxis]
        out["boxes"] = np.asarray(case.boxes, dtype=np.float32).reshape(-1, 6)
        out["labels"] = np.zeros(len(out["boxes"]), dtype=np.int64)
        return out


def _load_steps() -> list[Any]:
    low, high = HU_WINDOW
    return [
        LoadDetCased(),
        ScaleIntensityRanged("image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
        EnsureTyped(keys="boxes", dtype=torch.float32, track_meta=False),
        EnsureTyped(keys="labels", dtype=torch.long, track_meta=False),
    ]


def eval_transforms() -> Compose:
    """Whole volumes scaled to [0, 1] with their boxes (also what a cache keeps)."""
    return Compose(_load_steps())


def train_transforms() -> Compose:
    """Evaluation loading plus random flips of image and boxes together, and intensity jitter."""
    steps = _load_steps() + [
        RandFlipBoxd("image", "boxes", "image", prob=0.5, spatial_axis=axis) for axis in (0, 1, 2)
    ]
    steps += [
        RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
        RandShiftIntensityd(keys="image", offsets=0.05, prob=0.5),
        RandGaussianNoised(keys="image", prob=0.15, std=0.02),
        EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
    ]
    return Compose(steps)
