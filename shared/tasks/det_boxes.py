"""Nodule annotations (LUNA16 CSV, patient mm) to voxel boxes and back, with MONAI's box ops."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch
from monai.apps.detection.transforms.dictionary import (
    AffineBoxToImageCoordinated,
    AffineBoxToWorldCoordinated,
    ClipBoxToImaged,
    ConvertBoxModed,
    ConvertBoxToStandardModed,
)
from monai.data import MetaTensor
from monai.data.box_utils import box_centers
from monai.transforms import Compose

from shared.errors import DataError

__all__ = [
    "ANNOTATIONS_FILE",
    "Annotation",
    "AnnotationCounts",
    "AnnotationSkip",
    "boxes_to_world",
    "read_annotations",
    "voxel_boxes",
]

ANNOTATIONS_FILE = "annotations.csv"
COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
#: Box mode of an annotation: centre (x, y, z) and sizes, as MONAI names it.
CENTER_MODE = "cccwhd"


class AnnotationSkip(StrEnum):
    """Why a row of annotations.csv gives no box; the value keys the site's counts."""

    MALFORMED = "malformed"  # a coordinate or the diameter is not a positive finite number
    UNKNOWN_SERIES = "unknown_series"  # names no usable series of the site
    OUTSIDE_VOLUME = "outside_volume"  # its centre lies outside its series' volume


@dataclass(frozen=True)
class Annotation:
    """One nodule: centre in patient coordinates (LPS, mm) and diameter (mm)."""

    center_mm: tuple[float, float, float]
    diameter_mm: float


@dataclass
class AnnotationCounts:
    """Rows read and left out per reason: counts only, safe to send."""

    rows: int = 0
    used: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: AnnotationSkip, rows: int = 1) -> None:
        self.skipped[reason.value] = self.skipped.get(reason.value, 0) + rows

    def summary(self) -> dict[str, int]:
        """``annotations``, ``annotations_used`` and ``annotations_skipped_<reason>``."""
        counts = {"annotations": self.rows, "annotations_used": self.used}
        for reason in AnnotationSkip:
            counts[f"annotations_skipped_{reason.value}"] = self.skipped.get(reason.value, 0)
        return counts


def read_annotations(site_dir: Path) -> tuple[dict[str, list[Annotation]], AnnotationCounts]:
    """Read ``<site_dir>/annotations.csv``: ``seriesuid,coordX,coordY,coordZ,diameter_mm``.

    Returns the annotations by Series Instance UID and the row counts; malformed rows
    are counted and left out. The messages never hold a path or a UID.

    Raises
    ------
    DataError
        When the file is missing, not UTF-8 CSV, or lacks the LUNA16 header.
    """
    path = Path(site_dir) / ANNOTATIONS_FILE
    header = ",".join(COLUMNS)
    if not path.is_file():
        raise DataError(f"site has no {ANNOTATIONS_FILE}; add one with the header '{header}'")
    counts = AnnotationCounts()
    found: dict[str, list[Annotation]] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            names = [name.strip() for name in reader.fieldnames or []]
            if not set(COLUMNS) <= set(names):
                raise DataError(f"{ANNOTATIONS_FILE} must have the header '{header}' (LUNA16)")
            reader.fieldnames = names
            for row in reader:
                counts.rows += 1
                uid, annotation = _parse(row)
                if annotation is None:
                    counts.skip(AnnotationSkip.MALFORMED)
                    continue
                found.setdefault(uid, []).append(annotation)
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{ANNOTATIONS_FILE} is not UTF-8 CSV text; save it as CSV") from err
    return found, counts


def _parse(row: Mapping[str, str | None]) -> tuple[str, Annotation | None]:
    uid = (row.get("seriesuid") or "").strip()
    try:
        values = [float((row.get(name) or "").strip()) for name in COLUMNS[1:]]
    except ValueError:
        return uid, None
    if not uid or not all(math.isfinite(v) for v in values) or values[3] <= 0:
        return uid, None
    return uid, Annotation((values[0], values[1], values[2]), values[3])


def _reference(affine: np.ndarray, shape: Sequence[int]) -> MetaTensor:
    """A stand-in image of the volume's shape and affine, for MONAI's box transforms."""
    image = torch.zeros((1, *(int(s) for s in shape)), dtype=torch.uint8)
    return MetaTensor(image, affine=torch.as_tensor(affine, dtype=torch.float64))


def voxel_boxes(
    annotations: Sequence[Annotation], affine: np.ndarray, shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel boxes (StandardMode ``xyzxyz``) of nodules, through MONAI's box transforms.

    A nodule's world box (centre, diameter on each axis) becomes a standard box
    (``ConvertBoxToStandardModed``), is mapped by the inverse affine
    (``AffineBoxToImageCoordinated``) and clipped to the volume (``ClipBoxToImaged``).

    Returns
    -------
    boxes : numpy.ndarray
        float32 (N, 6) of the nodules whose centre lies inside the volume.
    inside : numpy.ndarray
        bool (len(annotations),): which annotations gave a box.
    """
    if not annotations:
        return np.zeros((0, 6), np.float32), np.zeros(0, bool)
    world = np.array([[*a.center_mm, *(a.diameter_mm,) * 3] for a in annotations], np.float64)
    data = {"image": _reference(affine, shape), "boxes": world, "labels": np.zeros(len(world))}
    mapped = Compose(
        [
            ConvertBoxToStandardModed(box_keys="boxes", mode=CENTER_MODE),
            AffineBoxToImageCoordinated(box_keys="boxes", box_ref_image_keys="image"),
        ]
    )(data)
    centers = np.asarray(box_centers(mapped["boxes"]))
    # Voxel i covers [i - 0.5, i + 0.5]: a centre beyond the outer faces is outside.
    inside = np.all((centers >= -0.5) & (centers <= np.asarray(shape) - 0.5), axis=1)
    kept = {**mapped, "boxes": mapped["boxes"][inside], "labels": mapped["labels"][inside]}
    clipped = ClipBoxToImaged(box_keys="boxes", label_keys="labels", box_ref_image_keys="image")
    boxes = np.asarray(clipped(kept)["boxes"], dtype=np.float32).reshape(-1, 6)
    return boxes, inside


def boxes_to_world(boxes: np.ndarray, affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Voxel boxes ``xyzxyz`` to world ``cccwhd`` rows (centre LPS mm, sizes mm).

    The inverse of `voxel_boxes` (``AffineBoxToWorldCoordinated`` then ``ConvertBoxModed``).
    """
    if len(boxes) == 0:
        return np.zeros((0, 6))
    data = {"image": _reference(affine, shape), "boxes": np.asarray(boxes, np.float64)}
    mapped = Compose(
        [
            AffineBoxToWorldCoordinated(box_keys="boxes", box_ref_image_keys="image"),
            ConvertBoxModed(box_keys="boxes", src_mode="xyzxyz", dst_mode=CENTER_MODE),
        ]
    )(data)
    return np.asarray(mapped["boxes"], dtype=np.float64)


def map_series_annotations(
    annotations: Mapping[str, list[Annotation]],
    geometry: Mapping[str, tuple[np.ndarray, tuple[int, ...]]],
    counts: AnnotationCounts,
) -> dict[str, np.ndarray]:
    """Voxel boxes of every usable series (empty for one without nodules), counting skips.

    `geometry` maps each usable series UID to its affine and volume shape; annotations
    of other series count as ``unknown_series``, centres outside as ``outside_volume``.
    """
    boxes: dict[str, np.ndarray] = {}
    for uid, rows in annotations.items():
        if uid not in geometry:
            counts.skip(AnnotationSkip.UNKNOWN_SERIES, len(rows))
    for uid, (affine, shape) in geometry.items():
        found, inside = voxel_boxes(annotations.get(uid, []), affine, shape)
        counts.used += int(inside.sum())
        counts.skip(AnnotationSkip.OUTSIDE_VOLUME, int((~inside).sum()))
        boxes[uid] = found
    return boxes
