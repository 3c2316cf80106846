"""Site-level DP on the server (Flower's wrapper) and the privacy budget of each round."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.common import FitRes, Parameters, Scalar
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping, Strategy

from shared.config import RunConfig
from shared.privacy import ACCOUNTANT, DpConfig

__all__ = ["SiteLevelDp", "round_privacy", "with_privacy"]


class SiteLevelDp(DifferentialPrivacyClientSideFixedClipping):
    """Flower's client-side fixed-clipping DP wrapper, noised for the sites that replied.

    Flower calibrates the noise on the mean of `num_sampled_clients` updates and drops
    the whole round on any failure. Here the noise is calibrated to the k updates that
    actually came (std ``z * C / k``, so one site's influence stays within the accounted
    bound however many dropped), and failures are left to MedFleet's recording wrapper
    outside, which records them and enforces min-sites.
    """

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.num_sampled_clients = max(1, len(results))
        return super().aggregate_fit(server_round, results, [])


def with_privacy(strategy: Strategy, run: RunConfig) -> Strategy:
    """`strategy` under Flower's DP wrapper when ``dp = client``; otherwise unchanged."""
    dp = DpConfig.from_run(run)
    if dp.mode != "client":
        return strategy
    noise = dp.client_noise(run.num_rounds)
    return SiteLevelDp(strategy, noise, dp.clip_norm, max(1, run.min_sites))


def round_privacy(
    run: RunConfig, server_round: int, per_site: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The budget spent after `server_round` rounds, as run.json and the table show it.

    ``dp = client``: the server's own accounting of its Gaussian releases. ``dp = dp-sgd``:
    each site's reported epsilon and the largest of them (the weakest guarantee).
    """
    dp = DpConfig.from_run(run)
    if not dp.enabled:
        return None
    entry: dict[str, Any] = {
        "mode": dp.mode,
        "delta": dp.delta,
        "clip_norm": dp.clip_norm,
        "accountant": ACCOUNTANT,
    }
    if dp.mode == "client":
        entry["noise_multiplier"] = dp.client_noise(run.num_rounds)
        entry["epsilon"] = dp.client_epsilon(run.num_rounds, server_round)
        entry["unit"] = "site"
        return entry
    sites = {
        name: float(metrics["dp_epsilon"])
        for name, metrics in per_site.items()
        if "dp_epsilon" in metrics
    }
    entry["per_site"] = sites
    entry["epsilon"] = max(sites.values()) if sites else None
    entry["unit"] = "example"
    return entry
