"""Classification metrics and their aggregation across sites."""

import numpy as np
import pytest

from shared.metrics import classification_metrics, pooled_classification_metrics, weighted_mean


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
