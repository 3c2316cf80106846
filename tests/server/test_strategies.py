"""The strategy registry: Flower's classes by name, their keys, and resumable optimiser state."""

from pathlib import Path
from unittest.mock import MagicMock

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import strategy as fl

from server.checkpoint import load_checkpoint, save_checkpoint
from server.resume import restore_strategy_state
from server.strategies import STRATEGIES, build_strategy, strategy_state_attrs
from shared.config import RunConfig
from shared.errors import ConfigError
from shared.run_options import STRATEGY_NAMES

INITIAL = [np.zeros((4,), np.float32), np.ones((2, 2), np.float32)]


def _build(name: str, **config) -> fl.Strategy:
    run = RunConfig.from_mapping({"strategy": name, "min-sites": 5, **config})
    return build_strategy(run, ndarrays_to_parameters(INITIAL), lambda r: {}, lambda r: {})


def _results(updates: list[list[np.ndarray]]) -> list:
    return [
        (MagicMock(node_id=i), FitRes(Status(Code.OK, ""), ndarrays_to_parameters(u), 10, {}))
        for i, u in enumerate(updates)
    ]


def test_every_declared_name_is_registered() -> None:
    # Assert
    assert set(STRATEGIES) == set(STRATEGY_NAMES)


@pytest.mark.parametrize(
    ("name", "cls", "attr", "value"),
    [
        ("fedavg", fl.FedAvg, "min_fit_clients", 5),
        ("fedprox", fl.FedProx, "proximal_mu", 0.3),
        ("fedadam", fl.FedAdam, "eta", 0.05),
        ("fedyogi", fl.FedYogi, "beta_2", 0.95),
        ("fedadagrad", fl.FedAdagrad, "tau", 0.01),
        ("fedavgm", fl.FedAvgM, "server_momentum", 0.5),
        ("fedmedian", fl.FedMedian, "min_available_clients", 5),
        ("fedtrimmedavg", fl.FedTrimmedAvg, "beta", 0.25),
        ("krum", fl.Krum, "num_malicious_clients", 1),
        ("bulyan", fl.Bulyan, "num_malicious_clients", 0),
    ],
)
def test_a_name_builds_flowers_class_with_its_keys(name, cls, attr, value) -> None:
    # Prepare
    keys = {
        "proximal-mu": 0.3,
        "server-lr": 0.05,
        "fedopt-beta-2": 0.95,
        "fedopt-tau": 0.01,
        "server-momentum": 0.5,
        "trimmed-beta": 0.25,
        "num-malicious": 0 if name == "bulyan" else 1,
    }

    # Execute
    strategy = _build(name, **keys)

    # Assert
    assert type(strategy) is cls
    assert getattr(strategy, attr) == pytest.approx(value)


def test_krum_refuses_too_few_sites_for_its_malicious_count() -> None:
    # Execute / Assert: Krum needs n >= 2f + 3
    with pytest.raises(ConfigError, match="needs min-sites >= 7"):
        _build("krum", **{"num-malicious": 2})


def test_fedmedian_is_the_coordinate_wise_median() -> None:
    # Prepare
    strategy = _build("fedmedian")
    updates = [[a + k for a in INITIAL] for k in (0.0, 1.0, 100.0)]

    # Execute
    params, _ = strategy.aggregate_fit(1, _results(updates), [])

    # Assert
    assert params is not None
    np.testing.assert_allclose(parameters_to_ndarrays(params)[0], INITIAL[0] + 1.0)


def test_fedadam_resumed_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    # Prepare: the same three rounds of site updates
    rng = np.random.default_rng(1)
    rounds = [[[a + rng.normal(size=a.shape) for a in INITIAL] for _ in range(3)] for _ in range(3)]
    straight = _build("fedadam")
    for r, updates in enumerate(rounds, start=1):
        expected, _ = straight.aggregate_fit(r, _results(updates), [])

    # Execute: two rounds, checkpoint, a new strategy restored from it, round three
    first = _build("fedadam")
    for r, updates in enumerate(rounds[:2], start=1):
        params, _ = first.aggregate_fit(r, _results(updates), [])
    weights = parameters_to_ndarrays(params)
    path = save_checkpoint(
        tmp_path / "round-2.npz", 2, ["a", "b"], weights, strategy_state_attrs(first), {}
    )
    checkpoint = load_checkpoint(path)
    second = _build("fedadam")
    restore_strategy_state(second, checkpoint)
    resumed, _ = second.aggregate_fit(3, _results(rounds[2]), [])

    # Assert
    assert set(checkpoint.strategy_state) == {"current_weights", "m_t", "v_t"}
    pairs = zip(parameters_to_ndarrays(resumed), parameters_to_ndarrays(expected), strict=True)
    for got, want in pairs:
        np.testing.assert_array_equal(got, want)
