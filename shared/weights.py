"""Model weights in and out as NumPy arrays, with the checks a federated update needs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from shared.errors import UpdateError

__all__ = ["NORM_LAYERS", "check_finite", "get_weights", "norm_state_keys", "set_weights"]

#: Normalisation layers, the ones FedBN keeps at each site: batch and instance norm
#: (torch's `_NormBase`), group norm and layer norm.
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
)


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Return every state-dict entry (parameters and buffers) as a NumPy array, in order."""
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def norm_state_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the normalisation layers' parameters and statistics, in order.

    Empty for a model whose normalisation holds no state (e.g. affine-free instance norm).
    """
    keys = []
    for prefix, module in model.named_modules():
        if isinstance(module, NORM_LAYERS):
            head = f"{prefix}." if prefix else ""
            keys += [head + name for name in module.state_dict()]
    return keys


def check_finite(arrays: Sequence[np.ndarray], what: str = "model update") -> None:
    """Raise UpdateError when any array holds NaN or Inf."""
    for index, array in enumerate(arrays):
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise UpdateError(
                f"{what} has NaN/Inf values in tensor {index}; the site's training diverged "
                "(lower 'lr' or check its data)"
            )


def set_weights(model: nn.Module, arrays: Sequence[np.ndarray]) -> None:
    """Load `arrays` into `model` in state-dict order.

    Arrays are cast to the model's own dtypes: SecAgg+ returns float64, and integer
    buffers (e.g. BatchNorm's `num_batches_tracked`) come back as floats after averaging.
    """
    state = model.state_dict()
    if len(arrays) != len(state):
        raise UpdateError(
            f"update has {len(arrays)} tensors but the model has {len(state)}; "
            "server and sites must run the same task and MedFleet version"
        )
    check_finite(arrays)
    new_state = {}
    for (key, current), array in zip(state.items(), arrays, strict=True):
        if tuple(array.shape) != tuple(current.shape):
            raise UpdateError(
                f"update tensor '{key}' has shape {tuple(array.shape)}, model expects "
                f"{tuple(current.shape)}; server and sites must use the same model settings"
            )
        value = np.asarray(array)
        if not current.is_floating_point():
            value = np.rint(value)
        new_state[key] = torch.as_tensor(value).to(dtype=current.dtype)
    model.load_state_dict(new_state, strict=True)
