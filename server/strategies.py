"""The strategy registry: Flower's own aggregation rules, picked by the run-config `strategy`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.common import Parameters, Scalar
from flwr.server import strategy as fl

from shared.config import RunConfig

__all__ = ["STRATEGIES", "build_strategy", "strategy_state_attrs"]

ConfigFn = Callable[[int], dict[str, Scalar]]

#: Public attributes in which Flower's server optimisers keep their state between rounds
#: (FedAdam/FedYogi/FedAdagrad: `current_weights`, `m_t`, `v_t`; FedAvgM: `momentum_vector`).
_STATE_ATTRS = ("current_weights", "m_t", "v_t", "momentum_vector")


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
