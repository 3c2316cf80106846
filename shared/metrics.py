"""Metric helpers shared by tasks: classification scores and weighted aggregation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "CONFUSION_KEYS",
    "ROC_THRESHOLDS",
    "classification_metrics",
    "is_count_key",
    "pooled_classification_metrics",
    "roc_counts",
    "roc_points",
    "weighted_mean",
]

CONFUSION_KEYS = ("tp", "fp", "tn", "fn")

#: The fixed thresholds of the ROC counts every site sends (0.05 to 0.95): the pooled
#: ROC curve is then exact at these points. Thresholds 0 and above 1 need no count:
#: they give the corners (1, 1) and (0, 0).
ROC_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Binary classification scores from scikit-learn, plus confusion counts.

    Parameters
    ----------
    labels : np.ndarray
        True labels, 0 or 1, shape (N,).
    probs : np.ndarray
        Predicted probability of class 1, shape (N,).

    Returns
    -------
    dict
        accuracy, precision, recall, f1, auc (NaN when only one class is present)
        and the confusion counts tp, fp, tn, fn, and the ROC counts of `roc_counts`.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    preds = (probs >= 0.5).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, preds, average="binary", pos_label=1, zero_division=0
    )
    tn, fp, fn, tp = confusion_matrix(labels, preds, labels=[0, 1]).ravel()
    auc = roc_auc_score(labels, probs) if len(np.unique(labels)) == 2 else float("nan")
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "auc": float(auc),
        "tp": float(tp),
        "fp": float(fp),
        "tn": float(tn),
        "fn": float(fn),
        **roc_counts(labels, probs),
    }


def roc_counts(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Positives and negatives scored at or above each of `ROC_THRESHOLDS`.

    Counts only (``roc_tp_<i>``, ``roc_fp_<i>`` for threshold i), so summing them over
    sites gives the ROC curve of the pooled validation sets exactly, and no value is
    about one image.
    """
    positive = np.asarray(labels) == 1
    scores = np.asarray(probs, dtype=np.float64)
    counts: dict[str, float] = {}
    for index, threshold in enumerate(ROC_THRESHOLDS):
        above = scores >= threshold
        counts[f"roc_tp_{index}"] = float(np.sum(above & positive))
        counts[f"roc_fp_{index}"] = float(np.sum(above & ~positive))
    return counts


def roc_points(metrics: Mapping[str, Any]) -> list[tuple[float, float]] | None:
    """The (false positive rate, true positive rate) points of one metrics mapping.

    From the corner (0, 0) through each of `ROC_THRESHOLDS`, highest first, to (1, 1);
    None when the ROC counts or a class are missing.
    """
    keys = [f"roc_{kind}_{i}" for i in range(len(ROC_THRESHOLDS)) for kind in ("tp", "fp")]
    if any(metrics.get(k) is None for k in (*keys, *CONFUSION_KEYS)):
        return None
    positives = float(metrics["tp"]) + float(metrics["fn"])
    negatives = float(metrics["fp"]) + float(metrics["tn"])
    if positives <= 0 or negatives <= 0:
        return None
    points = [(0.0, 0.0)]
    for index in reversed(range(len(ROC_THRESHOLDS))):
        fpr = float(metrics[f"roc_fp_{index}"]) / negatives
        tpr = float(metrics[f"roc_tp_{index}"]) / positives
        points.append((fpr, tpr))
    return [*points, (1.0, 1.0)]


def is_count_key(key: str) -> bool:
    """Whether a metric is a count (confusion, ROC or detection FROC) rather than a score."""
    return key in CONFUSION_KEYS or key.startswith(("roc_tp_", "roc_fp_", "froc_"))


def pooled_classification_metrics(
    results: Sequence[tuple[int, Mapping[str, Any]]],
) -> dict[str, float]:
    """Aggregate sites' classification metrics.

    Accuracy, precision, recall and F1 are recomputed from the summed confusion counts,
    so they equal the scores on the pooled validation sets exactly; the ROC counts are
    summed, so the pooled ROC curve is exact too. AUC and loss cannot be pooled from
    counts and are averaged weighted by examples.
    """
    merged = weighted_mean(results)
    merged = {k: v for k, v in merged.items() if not is_count_key(k)}
    roc = {k for _, m in results for k in m if is_count_key(k) and k not in CONFUSION_KEYS}
    # A site without the counts (an older MedFleet) would make the sum a partial curve.
    if all(k in m for _, m in results for k in roc):
        merged.update({k: sum(float(m[k]) for _, m in results) for k in sorted(roc)})
    counts = {k: sum(float(m.get(k, 0.0)) for _, m in results) for k in CONFUSION_KEYS}
    tp, fp, tn, fn = (counts[k] for k in CONFUSION_KEYS)
    total = tp + fp + tn + fn
    if total > 0:
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        merged.update(
            accuracy=(tp + tn) / total,
            precision=precision,
            recall=recall,
            f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            **counts,
        )
    return merged


def weighted_mean(results: Sequence[tuple[int, Mapping[str, Any]]]) -> dict[str, float]:
    """Average every numeric metric over sites, weighted by each site's example count.

    Non-numeric values (e.g. the site name) are ignored; a metric missing or NaN at a
    site is averaged over the sites that reported it.
    """
    sums: dict[str, float] = {}
    weights: dict[str, int] = {}
    for num_examples, metrics in results:
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if value != value:  # NaN: undefined at this site (e.g. AUC with one class)
                continue
            sums[key] = sums.get(key, 0.0) + num_examples * float(value)
            weights[key] = weights.get(key, 0) + num_examples
    return {key: sums[key] / weights[key] for key in sums if weights[key] > 0}
