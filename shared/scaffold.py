"""SCAFFOLD's control variates at a site (Karimireddy et al., 2020, option II).

SCAFFOLD corrects each site's local steps for its drift away from the other sites
(label or scanner skew). The server keeps a control variate ``c`` and each site its own
``c_i``, both shaped like the model's state dict. Every fit instruction carries the
global model ``x`` followed by ``c``; the site trains with each optimiser step followed
by ``w -= lr * (c - c_i)``, and after its ``K`` steps sets

    c_i+ = c_i - c + (x - y) / (K * lr)

where ``y`` is its trained model. It sends ``y`` followed by ``dc_i = c_i+ - c_i``, so
that Flower's FedAvg averages both halves and the server only adds
``|S| / N * mean(dc_i)`` to ``c`` (`server.strategies.Scaffold`): no aggregation rule
of MedFleet's own, and SecAgg+ masks the control variates like the weights.

Only trainable parameters are corrected; buffers (batch-norm statistics, counters) get
a zero control variate. With Adam, the optimiser of the tasks, ``(x - y) / (K * lr)`` is
the average normalised step rather than the average gradient, and the correction is
added after each step (as NVIDIA FLARE's SCAFFOLD does), which keeps both on one scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from shared.errors import ConfigError

__all__ = ["DriftCorrection", "split_control", "zero_control"]


def zero_control(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A control variate of zeros (float32) shaped like `arrays`."""
    return [np.zeros(np.shape(a), dtype=np.float32) for a in arrays]


def split_control(
    arrays: Sequence[np.ndarray], num_model: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The model's `num_model` arrays and the control variate that follows them.

    Raises ConfigError when the arrays are not a model followed by a control variate of
    the same shapes (a server not running `strategy = scaffold`, or another model).
    """
    model, control = list(arrays[:num_model]), list(arrays[num_model:])
    shapes = [np.shape(a) for a in model]
    if len(control) != num_model or [np.shape(c) for c in control] != shapes:
        raise ConfigError(
            f"strategy 'scaffold' expects the {num_model} model arrays followed by a control "
            f"variate of the same shapes; received {len(arrays)} arrays: check that server "
            "and sites run the same task, model and strategy"
        )
    return model, control


@dataclass
class DriftCorrection:
    """One local round's SCAFFOLD correction ``-lr * (c - c_i)`` after every optimiser step.

    Build it with `for_model` once the global weights are loaded, pass it to the training
    loop in `TrainSettings.scaffold`, and call `control_delta` after training.
    """

    #: The round's start ``x``, the server's ``c`` and the site's ``c_i``, as sent.
    start: list[np.ndarray]
    server: list[np.ndarray]
    local: list[np.ndarray]
    lr: float
    steps: int = 0
    #: (index in the arrays Flower sends, trainable parameter, its ``c - c_i``).
    _trained: list[tuple[int, nn.Parameter, torch.Tensor]] = field(default_factory=list, repr=False)

    @classmethod
    def for_model(
        cls,
        model: nn.Module,
        server: Sequence[np.ndarray],
        local: Sequence[np.ndarray] | None,
        lr: float,
    ) -> DriftCorrection:
        """The correction of `model` (holding the global weights ``x``) for one round.

        `local` is the site's ``c_i`` from earlier rounds, None (zeros) at first.
        """
        state = model.state_dict()
        start = [t.detach().cpu().numpy().copy() for t in state.values()]
        local = list(local) if local is not None else zero_control(start)
        if [np.shape(a) for a in local] != [np.shape(a) for a in start]:
            local = zero_control(start)  # another model than last round: start afresh
        correction = cls(start, list(server), local, lr)
        params = dict(model.named_parameters())
        for i, key in enumerate(state):
            param = params.get(key)
            if param is not None and param.requires_grad:
                diff = np.asarray(server[i], dtype=np.float32) - local[i]
                correction._trained.append((i, param, torch.from_numpy(diff)))
        return correction

    @torch.no_grad()
    def after_step(self) -> None:
        """``w -= lr * (c - c_i)`` for every trainable parameter; count the step."""
        for index, (i, param, diff) in enumerate(self._trained):
            if diff.device != param.device or diff.dtype != param.dtype:
                diff = diff.to(device=param.device, dtype=param.dtype)
                self._trained[index] = (i, param, diff)
            param.add_(diff, alpha=-self.lr)
        self.steps += 1

    def control_delta(self) -> list[np.ndarray]:
        """``dc_i = -c + (x - y) / (K * lr)`` for trainable parameters, 0 for buffers.

        Zeros everywhere when no step was taken (a site with no batches).
        """
        delta = zero_control(self.start)
        if self.steps == 0:
            return delta
        scale = 1.0 / (self.steps * self.lr)
        for i, param, _ in self._trained:
            end = param.detach().cpu().numpy().astype(np.float32)
            server = np.asarray(self.server[i], dtype=np.float32)
            delta[i] = np.asarray((self.start[i].astype(np.float32) - end) * scale - server)
        return delta

    def new_local(self, delta: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``c_i+ = c_i + dc_i``: what the site keeps for its next round."""
        return [np.asarray(c + d, dtype=np.float32) for c, d in zip(self.local, delta, strict=True)]
