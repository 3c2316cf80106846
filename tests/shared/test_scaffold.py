"""SCAFFOLD: the site's drift correction and control update, the server's control variate.

Expectations come from the paper's formulas (option II) worked by hand on models small
enough to compute: with plain SGD, ``(x - y) / (K lr)`` is the mean of the K gradients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, RecordDict
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from torch import nn

from client.site_client import CONTROL_RECORD, SiteClient
from server.strategies import Scaffold
from shared.config import RunConfig, SiteConfig
from shared.errors import ConfigError
from shared.scaffold import DriftCorrection, split_control
from shared.tasks.base import SiteData, Task, TrainSettings
from shared.weights import get_weights

LR = 0.1


class _Net(nn.Module):
    """One trainable layer and one buffer, as batch norm has."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.register_buffer("count", torch.tensor(3, dtype=torch.int64))


class _Task(Task):
    """Least squares on four fixed points, full-batch SGD: every step's gradient is known."""

    name = "fake"

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.gradients: list[list[np.ndarray]] = []

    def build_model(self) -> nn.Module:
        torch.manual_seed(0)
        return _Net()

    def load_site(self, site_dir: Path, cache_dir: Path | None = None) -> SiteData:
        raise NotImplementedError

    def train_loader(self, data: SiteData, settings: TrainSettings) -> list[Any]:
        x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]])
        return [(x, torch.tensor([[1.0], [2.0], [0.0], [1.0]]))]

    def batch_loss(
        self, model: nn.Module, batch: Any, data: SiteData, settings: TrainSettings
    ) -> tuple[torch.Tensor, int]:
        x, y = batch
        loss = ((model.lin(x) - y) ** 2).mean()
        grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
        self.gradients.append([g.detach().numpy().copy() for g in grads])
        return loss, len(x)

    def make_optimizer(self, model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=settings.lr)

    def evaluate(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> Any:
        raise NotImplementedError


def _client(state: RecordDict, epochs: int = 3) -> tuple[SiteClient, _Task]:
    run = RunConfig.from_mapping({"strategy": "scaffold", "lr": LR, "local-epochs": epochs})
    task = _Task(run)
    site = SiteConfig(name="site-1", data_dir=Path("unused"), device="cpu")
    data = SiteData(name="site-1", train=[0] * 4, val=[0] * 2)
    return SiteClient(task, data, run, site, state=state), task


def _keys(client: SiteClient) -> list[str]:
    return list(client.model.state_dict())


def test_with_zero_controls_the_control_change_is_the_mean_gradient_and_buffers_get_zero() -> None:
    # Prepare: round 1, server control 0, no site control yet
    state = RecordDict()
    client, task = _client(state)
    x = get_weights(client.model)
    zeros = [np.zeros(a.shape, np.float32) for a in x]
    # Execute
    arrays, count, _ = client.fit([*x, *zeros], {"server-round": 1})
    # Assert: the model part is plain SGD's result, the change is the mean of 3 gradients
    model, change = split_control(arrays, len(x))
    mean_grad = [np.mean([g[i] for g in task.gradients], axis=0) for i in range(2)]
    assert _keys(client) == ["count", "lin.weight", "lin.bias"]  # buffer first
    assert len(task.gradients) == 3 and count == 4
    np.testing.assert_array_equal(change[0], np.zeros((), np.float32))
    np.testing.assert_allclose(change[1], mean_grad[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(change[2], mean_grad[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model[1], x[1] - LR * 3 * mean_grad[0], rtol=1e-5, atol=1e-6)
    # ... and the site keeps c_i = change for its next round
    kept = state[CONTROL_RECORD].to_numpy_ndarrays()  # type: ignore[union-attr]
    for a, b in zip(kept, change, strict=True):
        np.testing.assert_allclose(a, b)


def test_each_step_is_corrected_by_the_control_difference() -> None:
    # Prepare: round 2 of a site whose c_i is known, under a server control c
    state = RecordDict()
    client, task = _client(state, epochs=2)
    x = get_weights(client.model)
    c_i = [np.full(a.shape, 0.5, np.float32) for a in x]
    c = [np.full(a.shape, -1.5, np.float32) for a in x]
    state[CONTROL_RECORD] = ArrayRecord(c_i)
    # Execute
    arrays, _, _ = client.fit([*x, *c], {"server-round": 2})
    # Assert: y = x - lr * sum_k (g_k + c - c_i) for the trainable arrays
    model, change = split_control(arrays, len(x))
    g = task.gradients
    for i, a in ((0, 1), (1, 2)):  # gradient i belongs to array a (the buffer is array 0)
        expected = x[a] - LR * (g[0][i] + g[1][i] + 2 * (c[a] - c_i[a]))
        np.testing.assert_allclose(model[a], expected, rtol=1e-5, atol=1e-6)
        # option II: dc_i = -c + (x - y) / (K lr) = mean gradient - c_i
        np.testing.assert_allclose(
            change[a], (g[0][i] + g[1][i]) / 2 - c_i[a], rtol=1e-5, atol=1e-5
        )
    np.testing.assert_array_equal(model[0], x[0])  # the buffer is not corrected
    np.testing.assert_array_equal(change[0], np.zeros((), np.float32))


def test_a_site_sent_no_control_variate_names_the_strategy() -> None:
    # Prepare
    client, _ = _client(RecordDict())
    x = get_weights(client.model)
    # Execute / Assert
    with pytest.raises(ConfigError, match="strategy 'scaffold' expects the 3 model arrays"):
        client.fit(x, {"server-round": 1})


def test_correction_moves_every_trainable_parameter_by_lr_times_the_difference() -> None:
    # Prepare: no gradient at all, only the correction
    model = _Net()
    x = get_weights(model)
    server = [np.full(a.shape, 2.0, np.float32) for a in x]
    local = [np.full(a.shape, 0.5, np.float32) for a in x]
    correction = DriftCorrection.for_model(model, server, local, lr=0.01)
    # Execute
    for _ in range(4):
        correction.after_step()
    # Assert: 4 steps of -0.01 * 1.5
    np.testing.assert_allclose(get_weights(model)[1], x[1] - 4 * 0.01 * 1.5, rtol=1e-6)
    assert int(model.count) == 3
    delta = correction.control_delta()
    # (x - y) / (K lr) = 1.5, minus c = 2.0
    np.testing.assert_allclose(delta[1], np.full(x[1].shape, -0.5), rtol=1e-5)


def _fit_res(arrays: list[np.ndarray], n: int) -> tuple[Any, FitRes]:
    res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), n, {})
    return object(), res


class _Manager:
    def __init__(self, n: int) -> None:
        self.n = n

    def num_available(self) -> int:
        return self.n

    def sample(self, num_clients: int, min_num_clients: int | None = None) -> list[Any]:
        return [object() for _ in range(num_clients)]


def test_server_sends_model_and_control_and_moves_control_by_the_replying_share() -> None:
    # Prepare: 3 sites connected, 2 reply with weights 1 and 3
    strategy = Scaffold(fraction_fit=1.0, min_fit_clients=1, min_available_clients=1)
    x = [np.zeros((2,), np.float32), np.ones((1,), np.float32)]
    sent = strategy.configure_fit(1, ndarrays_to_parameters(x), _Manager(3))  # type: ignore[arg-type]
    arrays_sent = parameters_to_ndarrays(sent[0][1].parameters)
    y1, y2 = [np.array([1.0, 2.0]), np.array([3.0])], [np.array([5.0, 6.0]), np.array([7.0])]
    d1, d2 = [np.array([4.0, 0.0]), np.array([8.0])], [np.array([0.0, 4.0]), np.array([0.0])]
    results = [_fit_res([*y1, *d1], 1), _fit_res([*y2, *d2], 3)]
    # Execute
    params, _ = strategy.aggregate_fit(1, results, [])  # type: ignore[arg-type]
    # Assert: sent = x then zeros; model = weighted mean; c = 0 + 2/3 * weighted mean of dc
    assert len(sent) == 3
    assert [a.tolist() for a in arrays_sent] == [[0.0, 0.0], [1.0], [0.0, 0.0], [0.0]]
    model = parameters_to_ndarrays(params)  # type: ignore[arg-type]
    np.testing.assert_allclose(model[0], (np.array([1, 2]) + 3 * np.array([5, 6])) / 4)
    np.testing.assert_allclose(model[1], [(3 + 21) / 4])
    np.testing.assert_allclose(strategy.control_variate[0], 2 / 3 * np.array([1.0, 3.0]))
    np.testing.assert_allclose(strategy.control_variate[1], 2 / 3 * np.array([2.0]))
    assert strategy.control_variate[0].dtype == np.float32


def test_scaffold_is_refused_for_the_gan_and_with_dp() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match="task 'gan' trains with its own step"):
        RunConfig.from_mapping({"strategy": "scaffold", "task": "gan"})
    with pytest.raises(ConfigError, match="set 'dp' = 'off'"):
        RunConfig.from_mapping({"strategy": "scaffold", "dp": "dp-sgd"})
