"""Weights in/out: order, dtype casting after SecAgg+, shape and NaN checks."""

import numpy as np
import pytest
import torch
from torch import nn

from shared.errors import UpdateError
from shared.weights import get_weights, set_weights


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def test_round_trip_casts_float64_and_integer_buffers() -> None:
    # Prepare
    model = _model()
    arrays = [a.astype(np.float64) + 1.0 for a in get_weights(model)]
    arrays[-1] = np.array(4.6)  # num_batches_tracked averaged into a float

    # Execute
    set_weights(model, arrays)

    # Assert
    state = model.state_dict()
    assert state["0.weight"].dtype == torch.float32
    np.testing.assert_allclose(state["0.weight"].numpy(), arrays[0], rtol=1e-6)
    assert state["1.num_batches_tracked"].dtype == torch.int64
    assert int(state["1.num_batches_tracked"]) == 5


def test_wrong_count_shape_or_nan_is_refused() -> None:
    # Prepare
    model = _model()
    good = get_weights(model)
    nan = [a.copy() for a in good]
    nan[0][0, 0] = np.nan

    # Execute / Assert
    with pytest.raises(UpdateError, match="tensors"):
        set_weights(model, good[:-1])
    with pytest.raises(UpdateError, match="shape"):
        set_weights(model, [np.zeros((5, 5))] + good[1:])
    with pytest.raises(UpdateError, match="NaN"):
        set_weights(model, nan)
    np.testing.assert_array_equal(get_weights(model)[0], good[0])  # unchanged
