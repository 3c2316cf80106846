"""Detector inference on one volume (3D, or slice by slice in 2D), and 2D training slices."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from monai.data.box_utils import box_centers, clip_boxes_to_image, non_max_suppression
from torch import nn

from shared.tasks.det_network import sliding_roi
from shared.tasks.detection_options import DetOptions

__all__ = ["detect", "loss_mode", "slice_items"]

_SLICE_BATCH = 16
#: 2D training keeps one slice in this many of those that show no nodule.
NEGATIVE_STRIDE = 4
_MAX_DETECTIONS = 100


@contextmanager
def loss_mode(detector: nn.Module) -> Iterator[None]:
    """The detector returns its losses, while its network stays in evaluation mode.

    MONAI's detector picks losses or detections by its own ``training`` flag; setting
    only that flag keeps batch-norm statistics frozen (a validation loss changes nothing).
    """
    was = detector.training
    detector.eval()
    detector.training = True
    try:
        yield
    finally:
        detector.train(was)


@torch.no_grad()
def detect(
    detector: nn.Module,
    image: torch.Tensor,
    options: DetOptions,
    device: torch.device,
    spacing: tuple[float, ...] = (1.0, 1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (voxel ``xyzxyz``, N x 6) and scores of one (1, x, y, z) volume, best first.

    3D: one pass over the whole volume (MONAI's sliding window when it is larger than
    the window). 2D: every axial slice, each 2D box given a depth equal to its in-plane
    size in mm (a round nodule), then MONAI's non-maximum suppression across slices and
    its clipping to the volume.
    """
    detector.to(device).eval()
    if options.spatial_dims == 3:
        roi = sliding_roi(3)
        windowed = any(s > r for s, r in zip(image.shape[1:], roi, strict=True))
        out = detector([image.to(device)], use_inferer=windowed)[0]
        return _numpy(out["boxes"]), _numpy(out["labels_scores"])
    slices = image[..., :].permute(3, 0, 1, 2)  # (z, 1, x, y)
    boxes, scores = [], []
    for start in range(0, len(slices), _SLICE_BATCH):
        chunk = [s.to(device) for s in slices[start : start + _SLICE_BATCH]]
        for offset, out in enumerate(detector(chunk)):
            flat = _numpy(out["boxes"])
            boxes.append(_thicken(flat, start + offset, spacing))
            scores.append(_numpy(out["labels_scores"]))
    merged, kept = _merge(np.concatenate(boxes), np.concatenate(scores), options.nms_iou)
    clipped, inside = clip_boxes_to_image(merged, tuple(image.shape[1:]), remove_empty=True)
    return np.asarray(clipped, dtype=np.float32).reshape(-1, 6), kept[np.asarray(inside)]


def _thicken(boxes: np.ndarray, k: int, spacing: tuple[float, ...]) -> np.ndarray:
    """3D boxes from the 2D boxes of slice k: depth = in-plane size (mm) / slice gap."""
    sizes_mm = (boxes[:, 2:4] - boxes[:, 0:2]) * np.asarray(spacing[:2])
    half = sizes_mm.mean(axis=1) / 2.0 / float(spacing[2])
    return np.stack(
        [boxes[:, 0], boxes[:, 1], k - half, boxes[:, 2], boxes[:, 3], k + half], axis=1
    ).astype(np.float32)


def _merge(boxes: np.ndarray, scores: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    if len(boxes) == 0:
        return boxes.reshape(0, 6), scores
    # One nodule is found on several neighbouring slices: suppression compares the boxes
    # at twice their depth, so that the slices of one nodule overlap enough to merge.
    center, half = (boxes[:, 2] + boxes[:, 5]) / 2.0, (boxes[:, 5] - boxes[:, 2])
    stretched = boxes.copy()
    stretched[:, 2], stretched[:, 5] = center - half, center + half
    keep = non_max_suppression(
        torch.as_tensor(stretched), torch.as_tensor(scores), iou, max_proposals=_MAX_DETECTIONS
    )
    keep = np.asarray(keep, dtype=int)
    return boxes[keep], scores[keep]


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def slice_items(volumes: Iterable[Mapping[str, Any]]) -> list[dict[str, torch.Tensor]]:
    """Axial slices of every volume, with the 2D boxes of the nodules they cut.

    A nodule's box belongs to the slices within the central half of its depth (at least
    the slice nearest its centre), where its cross-section is close to its full size.
    Every slice that cuts a nodule is kept, and one in `NEGATIVE_STRIDE` of the others:
    most slices show no nodule, and a tenth as many steps learn as well.
    """
    items = []
    for volume in volumes:
        image, boxes = volume["image"], volume["boxes"].reshape(-1, 6)
        centers = np.asarray(box_centers(boxes.numpy()), dtype=np.float64).reshape(-1, 3)
        reach = np.maximum((boxes[:, 5] - boxes[:, 2]).numpy() / 4.0, 0.5)
        for k in range(image.shape[-1]):
            cut = torch.as_tensor(np.abs(centers[:, 2] - k) <= reach)
            flat = boxes[cut][:, [0, 1, 3, 4]]
            if len(flat) == 0 and k % NEGATIVE_STRIDE:
                continue
            labels = torch.zeros(len(flat), dtype=torch.long)
            items.append({"image": image[..., k], "boxes": flat, "labels": labels})
    return items
