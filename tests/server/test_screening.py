"""screen_updates: structure, dtype, NaN/Inf and the leave-one-out norm check."""

import numpy as np
import pytest

from server.screening import screen_updates, update_norm

GLOBAL = [np.zeros((3,), np.float32), np.zeros((2, 2), np.float32), np.array(5, np.int64)]


def _update(delta: float) -> list[np.ndarray]:
    return [a + delta if a.dtype.kind == "f" else a.copy() for a in GLOBAL]


def test_update_norm_counts_float_tensors_only() -> None:
    # Execute / Assert: 7 float entries changed by 2, the integer counter ignored
    assert update_norm(_update(2.0), GLOBAL) == pytest.approx(2.0 * np.sqrt(7))


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ([GLOBAL[0], GLOBAL[1]], "2 tensors where the model has 3"),
        ([GLOBAL[0], np.zeros((4,), np.float32), GLOBAL[2]], "tensor 1 has shape (4,)"),
        ([GLOBAL[0].astype(np.complex64), GLOBAL[1], GLOBAL[2]], "not a real number type"),
        ([np.array([0, np.inf, 0], np.float32), GLOBAL[1], GLOBAL[2]], "NaN/Inf"),
    ],
)
def test_structurally_bad_updates_are_refused(bad: list[np.ndarray], reason: str) -> None:
    # Execute
    rejected = screen_updates([_update(0.1), bad, _update(0.2)], GLOBAL, max_norm_ratio=10)

    # Assert
    assert [r.index for r in rejected] == [1]
    assert reason in rejected[0].reason


def test_the_norm_check_compares_each_site_with_the_others() -> None:
    # Prepare: with two sites a plain median would sit halfway and let 1000x through
    updates = [_update(0.1), _update(100.0)]

    # Execute
    rejected = screen_updates(updates, GLOBAL, max_norm_ratio=10)
    off = screen_updates(updates, GLOBAL, max_norm_ratio=0)

    # Assert
    assert [r.index for r in rejected] == [1] and "1000x" in rejected[0].reason
    assert off == []


def test_similar_updates_all_pass() -> None:
    # Execute / Assert: a site with 5x the others' change is unusual but not refused
    assert screen_updates([_update(0.1), _update(0.2), _update(0.5)], GLOBAL, 10) == []
