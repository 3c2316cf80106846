"""Metric helpers shared by tasks: weighted aggregation across sites."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["weighted_mean"]


def weighted_mean(results: Sequence[tuple[int, Mapping[str, Any]]]) -> dict[str, float]:
    """Average every numeric metric over sites, weighted by each site's example count.

    Non-numeric values (e.g. the site name) are ignored; a metric missing at a site is
    averaged over the sites that reported it.
    """
    sums: dict[str, float] = {}
    weights: dict[str, int] = {}
    for num_examples, metrics in results:
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if value != value:  # NaN: metric undefined at this site (e.g. AUC with one class)
                continue
            sums[key] = sums.get(key, 0.0) + num_examples * float(value)
            weights[key] = weights.get(key, 0) + num_examples
    return {key: sums[key] / weights[key] for key in sums if weights[key] > 0}
