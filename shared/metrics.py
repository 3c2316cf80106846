"""Metric helpers shared by tasks: classification scores and weighted aggregation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "pooled_classification_metrics", "weighted_mean"]

CONFUSION_KEYS = ("tp", "fp", "tn", "fn")


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
        and the confusion counts tp, fp, tn, fn.
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
    }


def pooled_classification_metrics(
    results: Sequence[tuple[int, Mapping[str, Any]]],
) -> dict[str, float]:
    """Aggregate sites' classification metrics.

    Accuracy, precision, recall and F1 are recomputed from the summed confusion counts,
    so they equal the scores on the pooled validation sets exactly. AUC and loss cannot
    be pooled from counts and are averaged weighted by examples.
    """
    merged = weighted_mean(results)
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
