"""Detection scores: LUNA16 FROC (sensitivity at 1/8..8 FPs per scan, CPM) and mAP at IoU 0.1.

How the sites' scores combine. A site sends counts, never a detection: the number of
its false positives and of its hit nodules in each of 20 score bins (0.05 wide), the
number of its nodules and of its scans. FROC is computed from these counts with MONAI's
helpers, each detection standing at its bin's lower edge; the server sums the counts and
computes the same, so the overall FROC is exactly the FROC of the pooled detections of
all sites (at 0.05 score resolution), not an average of curves. mAP depends on the order
of every detection's score, which counts cannot carry: the overall mAP is the sites'
mean weighted by their nodule counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from monai.apps.detection.metrics.coco import COCOMetric
from monai.apps.detection.metrics.matching import matching_batch
from monai.data.box_utils import box_centers, box_iou
from monai.metrics.froc import compute_fp_tp_probs_nd, compute_froc_curve_data, compute_froc_score

from shared.metrics import weighted_mean

__all__ = [
    "FP_RATES",
    "SCORE_BINS",
    "ScanResult",
    "aggregate_detection_metrics",
    "froc_counts",
    "froc_from_counts",
    "mean_average_precision",
    "site_metrics",
]

#: False positives per scan at which LUNA16 reads the sensitivity; CPM is their mean.
FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
FP_RATE_NAMES = ("0_125", "0_25", "0_5", "1", "2", "4", "8")
#: Score bins of the counts a site sends: [0.05 b, 0.05 (b + 1)), the last one closed.
SCORE_BINS = 20
IOU_THRESHOLD = 0.1
_AP_KEY = f"AP_IoU_{IOU_THRESHOLD:.2f}_MaxDet_100"


@dataclass(frozen=True)
class ScanResult:
    """One validation scan: its detections and reference boxes, in voxel ``xyzxyz``."""

    boxes: np.ndarray
    scores: np.ndarray
    truth: np.ndarray
    spacing: tuple[float, ...]
    shape: tuple[int, ...]


def _hit_mask(scan: ScanResult) -> np.ndarray:
    """Label k + 1 on the voxels within nodule k's radius (mm) of its centre: LUNA16's hit."""
    mask = np.zeros(scan.shape, dtype=np.int16)
    if len(scan.truth) == 0:
        return mask
    spacing = np.asarray(scan.spacing, dtype=np.float64)
    axes = np.meshgrid(*[np.arange(n) * s for n, s in zip(scan.shape, spacing, strict=True)],
                       indexing="ij")  # fmt: skip
    centers = np.asarray(box_centers(scan.truth), dtype=np.float64) * spacing
    dims = len(scan.shape)
    sizes = (scan.truth[:, dims:] - scan.truth[:, :dims]) * spacing
    for label, (center, size) in enumerate(zip(centers, sizes, strict=True), start=1):
        # The radius is half the nodule's in-plane diameter, as LUNA16 annotates it.
        radius = float(np.mean(size[:2])) / 2.0
        inside = sum((a - c) ** 2 for a, c in zip(axes, center, strict=True)) <= radius**2
        mask[inside] = label
    return mask


def _bin(scores: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(np.asarray(scores) * SCORE_BINS), 0, SCORE_BINS - 1).astype(int)


def froc_counts(scans: Sequence[ScanResult]) -> dict[str, float]:
    """The counts a site sends for FROC (see the module docstring).

    ``froc_fp_<b>``: false-positive detections scored in bin b; ``froc_tp_<b>``: nodules
    whose best hit is scored in bin b (LUNA16: a detection centre within the nodule's
    radius); ``froc_nodules`` and ``froc_scans``.
    """
    fp_bins = np.zeros(SCORE_BINS, dtype=int)
    tp_bins = np.zeros(SCORE_BINS, dtype=int)
    nodules = 0
    for scan in scans:
        mask = _hit_mask(scan)
        centers = np.rint(np.asarray(box_centers(scan.boxes), dtype=np.float64)).astype(int)
        centers = np.clip(centers.reshape(-1, len(scan.shape)), 0, np.asarray(scan.shape) - 1)
        fp_probs, tp_probs, targets = compute_fp_tp_probs_nd(
            np.asarray(scan.scores, dtype=np.float64), centers, mask
        )
        nodules += targets
        fp_bins = fp_bins + np.bincount(_bin(np.asarray(fp_probs)), minlength=SCORE_BINS)
        hits = np.asarray(tp_probs)
        tp_bins = tp_bins + np.bincount(_bin(hits[hits > 0]), minlength=SCORE_BINS)
    counts = {f"froc_fp_{b}": float(fp_bins[b]) for b in range(SCORE_BINS)}
    counts.update({f"froc_tp_{b}": float(tp_bins[b]) for b in range(SCORE_BINS)})
    counts.update(froc_nodules=float(nodules), froc_scans=float(len(scans)))
    return counts


def froc_from_counts(counts: Mapping[str, Any]) -> dict[str, float]:
    """``sens_at_<rate>`` for each of `FP_RATES` and ``cpm`` from FROC counts (MONAI).

    NaN when there is no scan or no nodule.
    """
    names = [f"sens_at_{name}" for name in FP_RATE_NAMES]
    nodules, scans = float(counts.get("froc_nodules", 0)), float(counts.get("froc_scans", 0))
    if nodules <= 0 or scans <= 0:
        return {name: math.nan for name in (*names, "cpm")}
    edges = np.arange(SCORE_BINS) / SCORE_BINS
    fp = np.repeat(edges, [int(counts.get(f"froc_fp_{b}", 0)) for b in range(SCORE_BINS)])
    tp = np.repeat(edges, [int(counts.get(f"froc_tp_{b}", 0)) for b in range(SCORE_BINS)])
    missed = int(nodules) - len(tp)
    # Missed nodules score 0; a 0 among the false positives keeps MONAI from dropping the
    # lowest real score (it starts its thresholds above the smallest value).
    tp = np.concatenate([tp, np.zeros(max(missed, 0))])
    fps_per_scan, sensitivity = compute_froc_curve_data(
        np.append(fp, 0.0), tp, int(nodules), int(scans)
    )
    values = {
        name: float(compute_froc_score(fps_per_scan, sensitivity, (rate,)))
        for name, rate in zip(names, FP_RATES, strict=True)
    }
    values["cpm"] = float(compute_froc_score(fps_per_scan, sensitivity, FP_RATES))
    return values


def mean_average_precision(scans: Sequence[ScanResult]) -> float:
    """COCO average precision of the nodule class at IoU 0.1 (MONAI); NaN without nodules."""
    if sum(len(scan.truth) for scan in scans) == 0:
        return math.nan
    metric = COCOMetric(classes=["nodule"], iou_list=[IOU_THRESHOLD], max_detection=[100],
                        verbose=False)  # fmt: skip
    results = matching_batch(
        iou_fn=box_iou,  # type: ignore[arg-type]  # MONAI's IoU takes arrays or tensors
        iou_thresholds=list(metric.iou_thresholds),
        pred_boxes=[np.asarray(s.boxes, np.float64) for s in scans],
        pred_classes=[np.zeros(len(s.boxes), int) for s in scans],
        pred_scores=[np.asarray(s.scores, np.float64) for s in scans],
        gt_boxes=[np.asarray(s.truth, np.float64) for s in scans],
        gt_classes=[np.zeros(len(s.truth), int) for s in scans],
        max_detections=100,
    )
    return float(metric(results)[0][_AP_KEY])


def site_metrics(scans: Sequence[ScanResult]) -> dict[str, float]:
    """A site's FROC counts, its FROC sensitivities and CPM, and its mAP (``map``)."""
    counts = froc_counts(scans)
    return {**froc_from_counts(counts), "map": mean_average_precision(scans), **counts}


def is_froc_count(key: str) -> bool:
    """Whether a metric is one of the FROC counts (summed, not shown)."""
    return key.startswith(("froc_fp_", "froc_tp_")) or key in ("froc_nodules", "froc_scans")


def aggregate_detection_metrics(
    results: Sequence[tuple[int, Mapping[str, Any]]],
) -> dict[str, float]:
    """Overall metrics: FROC from the summed counts, mAP weighted by nodules, the rest by scans."""
    merged = weighted_mean(results)
    counts = {
        key: sum(float(m.get(key, 0.0)) for _, m in results)
        for key in sorted({k for _, m in results for k in m if is_froc_count(k)})
    }
    merged.update(counts)
    if counts:
        merged.update(froc_from_counts(counts))
    nodules = [(int(m.get("froc_nodules", 0)), {"map": m["map"]}) for _, m in results if "map" in m]
    merged["map"] = weighted_mean(nodules).get("map", math.nan)
    return merged
