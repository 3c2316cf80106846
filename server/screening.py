"""Screen site updates before aggregation: wrong structure, NaN/Inf, a change far out of line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Rejection", "screen_updates", "update_norm"]


@dataclass(frozen=True)
class Rejection:
    """One update left out of a round, with a reason that names no site-local detail."""

    index: int
    reason: str


def _structure_problem(arrays: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> str:
    if len(arrays) != len(reference):
        return f"{len(arrays)} tensors where the model has {len(reference)}"
    for i, (array, ref) in enumerate(zip(arrays, reference, strict=True)):
        if array.shape != ref.shape:
            return f"tensor {i} has shape {array.shape}, the model {ref.shape}"
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            return f"tensor {i} has dtype {array.dtype}, not a real number type"
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            return f"tensor {i} holds NaN/Inf values"
    return ""


def update_norm(arrays: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """L2 norm of the change from `reference` over the floating-point tensors."""
    total = 0.0
    for array, ref in zip(arrays, reference, strict=True):
        if np.issubdtype(ref.dtype, np.floating):
            total += float(np.sum((array.astype(np.float64) - ref.astype(np.float64)) ** 2))
    return float(np.sqrt(total))


def screen_updates(
    updates: Sequence[Sequence[np.ndarray]],
    reference: Sequence[np.ndarray],
    max_norm_ratio: float,
) -> list[Rejection]:
    """Find the updates a round must leave out.

    An update is refused when its tensors do not match the model (count, shapes, a
    non-numeric dtype), when it holds NaN/Inf, or, with `max_norm_ratio` > 0 and at
    least two structurally sound updates, when its change from the global model is more
    than `max_norm_ratio` times the median change of the *other* sites (leave-one-out,
    so that one huge update cannot raise its own yardstick).

    Returns
    -------
    list of Rejection
        By index into `updates`; the rest are usable.
    """
    rejected: list[Rejection] = []
    sound: list[int] = []
    for i, arrays in enumerate(updates):
        problem = _structure_problem(arrays, reference)
        if problem:
            rejected.append(Rejection(i, problem))
        else:
            sound.append(i)
    if max_norm_ratio <= 0 or len(sound) < 2:
        return rejected
    norms = {i: update_norm(updates[i], reference) for i in sound}
    for i in sound:
        others = float(np.median([n for j, n in norms.items() if j != i]))
        if others > 0 and norms[i] > max_norm_ratio * others:
            rejected.append(
                Rejection(
                    i,
                    f"its change has norm {norms[i]:.3g}, {norms[i] / others:.0f}x the other "
                    f"sites' median {others:.3g} (max-update-norm-ratio {max_norm_ratio:g})",
                )
            )
    return sorted(rejected, key=lambda r: r.index)
