"""Classification metrics and their aggregation across sites."""

import numpy as np
import pytest

from shared.metrics import (
    ROC_THRESHOLDS,
    classification_metrics,
    is_count_key,
    pooled_classification_metrics,
    roc_points,
    weighted_mean,
)


def test_classification_metrics_match_hand_counts() -> None:
    # Prepare: 3 TP, 1 FN, 1 FP, 3 TN
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    probs = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.3, 0.4])

    # Execute
    m = classification_metrics(labels, probs)

    # Assert
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 1, 3)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    # AUC by counting ranked pairs: positives beat negatives in 13 of 16 pairs
    # (0.9, 0.8 and 0.7 beat all four; 0.2 beats only 0.1).
    assert m["auc"] == pytest.approx(13 / 16)


def test_auc_is_nan_with_one_class_and_ignored_in_aggregation() -> None:
    # Prepare
    one_class = classification_metrics(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.7]))
    both = classification_metrics(np.array([0, 1]), np.array([0.2, 0.8]))

    # Execute
    merged = weighted_mean([(3, one_class), (2, both)])

    # Assert
    assert np.isnan(one_class["auc"])
    assert merged["auc"] == pytest.approx(1.0)


def test_pooled_scores_equal_scores_on_pooled_data() -> None:
    # Prepare
    rng = np.random.default_rng(0)
    sites = [(rng.integers(0, 2, n), rng.random(n)) for n in (40, 25, 9)]
    per_site = [(len(y), classification_metrics(y, p)) for y, p in sites]
    pooled_y = np.concatenate([y for y, _ in sites])
    pooled_p = np.concatenate([p for _, p in sites])

    # Execute
    merged = pooled_classification_metrics(per_site)

    # Assert
    expected = classification_metrics(pooled_y, pooled_p)
    for key in ("accuracy", "precision", "recall", "f1"):
        assert merged[key] == pytest.approx(expected[key])


def test_weighted_mean_skips_strings() -> None:
    # Execute
    merged = weighted_mean([(1, {"loss": 1.0, "site": "a"}), (3, {"loss": 3.0, "site": "b"})])

    # Assert
    assert merged == {"loss": pytest.approx(2.5)}


def _sklearn_counts_at(labels: np.ndarray, probs: np.ndarray, threshold: float) -> tuple[int, int]:
    """Scikit-learn's (tp, fp) counts of its ROC at the highest cut not below `threshold`."""
    from sklearn.metrics import roc_curve

    fpr, tpr, cuts = roc_curve(labels, probs, drop_intermediate=False)
    above = np.flatnonzero(cuts >= threshold)
    if not len(above):
        return 0, 0
    last = above[-1]
    return round(tpr[last] * labels.sum()), round(fpr[last] * (labels == 0).sum())


def test_pooled_roc_counts_equal_sklearn_roc_curve_on_pooled_data() -> None:
    # Prepare: three sites, one with scores exactly on thresholds
    rng = np.random.default_rng(1)
    sites = [(rng.integers(0, 2, n), rng.random(n)) for n in (40, 25)]
    sites.append((np.array([1, 0, 1, 0]), np.array([0.05, 0.5, 0.95, 0.95])))
    per_site = [(len(y), classification_metrics(y, p)) for y, p in sites]
    pooled_y = np.concatenate([y for y, _ in sites])
    pooled_p = np.concatenate([p for _, p in sites])

    # Execute
    merged = pooled_classification_metrics(per_site)

    # Assert
    for index, threshold in enumerate(ROC_THRESHOLDS):
        tp, fp = _sklearn_counts_at(pooled_y, pooled_p, threshold)
        assert (merged[f"roc_tp_{index}"], merged[f"roc_fp_{index}"]) == (tp, fp), threshold
    points = roc_points(merged)
    assert points is not None
    assert points[0] == (0.0, 0.0) and points[-1] == (1.0, 1.0)
    assert all(a <= b for a, b in zip(points, points[1:], strict=False))


def test_roc_counts_are_left_out_when_a_site_sent_none() -> None:
    # Prepare: an older site reports the confusion counts only
    new = classification_metrics(np.array([0, 1, 1]), np.array([0.2, 0.7, 0.4]))
    old = {k: v for k, v in new.items() if not k.startswith("roc_")}

    # Execute
    merged = pooled_classification_metrics([(3, new), (3, old)])

    # Assert
    assert not any(k.startswith("roc_") for k in merged)
    assert roc_points(merged) is None
    assert merged["tp"] == 2 * new["tp"]


def test_count_keys_are_told_apart_from_scores() -> None:
    # Execute / Assert
    assert all(is_count_key(k) for k in ("tp", "fn", "roc_tp_0", "roc_fp_18"))
    assert not any(is_count_key(k) for k in ("auc", "loss", "roc_auc"))
