"""The strategy registry: Flower's own aggregation rules, picked by the run-config `strategy`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.common import FitIns, FitRes, Parameters, Scalar
from flwr.common import ndarrays_to_parameters as to_parameters
from flwr.common import parameters_to_ndarrays as to_arrays
from flwr.server import strategy as fl
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy

from shared.config import RunConfig
from shared.errors import RoundError
from shared.scaffold import split_control, zero_control

__all__ = ["STRATEGIES", "Scaffold", "build_strategy", "strategy_state_attrs"]

ConfigFn = Callable[[int], dict[str, Scalar]]

#: Public attributes in which Flower's server optimisers keep their state between rounds
#: (FedAdam/FedYogi/FedAdagrad: `current_weights`, `m_t`, `v_t`; FedAvgM: `momentum_vector`).
_STATE_ATTRS = ("current_weights", "m_t", "v_t", "momentum_vector", "control_variate")


class Scaffold(fl.FedAvg):
    """SCAFFOLD (Karimireddy et al., 2020) on Flower's FedAvg (see `shared.scaffold`).

    Each fit instruction carries the global model followed by the server's control
    variate ``c``; each site replies with its model followed by its control change.
    FedAvg's own `aggregate_fit` averages both halves (under SecAgg+ the masked sum does),
    and ``c`` moves by ``|S| / N`` times the averaged change, `S` the sites that replied
    and `N` those connected when the round began. ``c`` is this strategy's state
    between rounds (`control_variate`), checkpointed and restored like FedAdam's moments.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.control_variate: list[np.ndarray] = []
        self._connected: dict[int, int] = {}

    def __repr__(self) -> str:
        return "Scaffold(FedAvg)"

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        model = to_arrays(parameters)
        if [a.shape for a in self.control_variate] != [a.shape for a in model]:
            self.control_variate = zero_control(model)
        self._connected[server_round] = client_manager.num_available()
        both = to_parameters([*model, *self.control_variate])
        return super().configure_fit(server_round, both, client_manager)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[Any],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        aggregated, metrics = super().aggregate_fit(server_round, results, failures)
        if aggregated is None:
            return None, metrics
        try:
            model, change = split_control(to_arrays(aggregated), len(self.control_variate))
        except Exception as err:
            raise RoundError(f"round {server_round}: {err}") from err
        connected = max(self._connected.pop(server_round, len(results)), len(results), 1)
        share = len(results) / connected
        self.control_variate = [
            np.asarray(c + share * d, dtype=np.float32)
            for c, d in zip(self.control_variate, change, strict=True)
        ]
        return to_parameters(model), metrics


def _fedopt(run: RunConfig) -> dict[str, Any]:
    return {
        "eta": run.option("server-lr"),
        "eta_l": run.lr,
        "beta_1": run.option("fedopt-beta-1"),
        "beta_2": run.option("fedopt-beta-2"),
        "tau": run.option("fedopt-tau"),
    }


#: name -> (Flower class, its specific keyword arguments from the run config).
STRATEGIES: dict[str, tuple[type[fl.FedAvg], Callable[[RunConfig], dict[str, Any]]]] = {
    "fedavg": (fl.FedAvg, lambda run: {}),
    "fedavgm": (
        fl.FedAvgM,
        lambda run: {
            "server_learning_rate": run.option("server-lr"),
            "server_momentum": run.option("server-momentum"),
        },
    ),
    # FedBN averages like FedAvg; its sites keep their own normalisation (client side).
    "fedbn": (fl.FedAvg, lambda run: {}),
    "fedprox": (fl.FedProx, lambda run: {"proximal_mu": run.option("proximal-mu")}),
    "scaffold": (Scaffold, lambda run: {}),
    "fedadagrad": (
        fl.FedAdagrad,
        lambda run: {k: v for k, v in _fedopt(run).items() if not k.startswith("beta")},
    ),
    "fedadam": (fl.FedAdam, _fedopt),
    "fedyogi": (fl.FedYogi, _fedopt),
    "fedmedian": (fl.FedMedian, lambda run: {}),
    "fedtrimmedavg": (fl.FedTrimmedAvg, lambda run: {"beta": run.option("trimmed-beta")}),
    "krum": (
        fl.Krum,
        lambda run: {
            "num_malicious_clients": run.option("num-malicious"),
            "num_clients_to_keep": run.option("krum-keep"),
        },
    ),
    "bulyan": (
        fl.Bulyan,
        lambda run: {"num_malicious_clients": run.option("num-malicious"), "to_keep": 0},
    ),
}


def build_strategy(
    run: RunConfig,
    initial: Parameters,
    on_fit_config: ConfigFn,
    on_evaluate_config: ConfigFn,
) -> fl.Strategy:
    """Flower's strategy named by `run.strategy`, configured for every site every round.

    Metrics are aggregated by MedFleet's recording wrapper (per site and by the task's
    rule), so the strategy's own metric aggregation is a no-op here.
    """
    cls, specific = STRATEGIES[run.strategy]
    evaluating = run.fraction_evaluate > 0
    return cls(
        fraction_fit=1.0,
        fraction_evaluate=run.fraction_evaluate,
        min_fit_clients=run.min_sites,
        min_evaluate_clients=run.min_sites if evaluating else 0,
        min_available_clients=run.min_sites,
        initial_parameters=initial,
        on_fit_config_fn=on_fit_config,
        on_evaluate_config_fn=on_evaluate_config,
        accept_failures=True,
        fit_metrics_aggregation_fn=_no_metrics,
        evaluate_metrics_aggregation_fn=_no_metrics,
        **specific(run),
    )


def strategy_state_attrs(strategy: fl.Strategy) -> dict[str, list[Any]]:
    """The optimiser state a strategy holds between rounds (empty for stateless rules)."""
    state = {}
    for name in _STATE_ATTRS:
        value = getattr(strategy, name, None)
        if isinstance(value, list) and value:
            state[name] = value
    return state


def _no_metrics(_: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
    return {}
