"""MedFleetFedAvg: Flower's FedAvg plus checks, checkpoints and the run record."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.common import (
    EvaluateRes,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from torch import nn

from server.run_record import RunRecorder
from shared.config import RunConfig
from shared.errors import UpdateError
from shared.tasks.base import Task
from shared.weights import check_finite

__all__ = ["MedFleetFedAvg"]

logger = logging.getLogger("medfleet.server")

FitResults = list[tuple[ClientProxy, FitRes]]
EvalResults = list[tuple[ClientProxy, EvaluateRes]]


class MedFleetFedAvg(FedAvg):
    """FedAvg over all sites with MedFleet's bookkeeping around Flower's aggregation.

    Aggregation itself is Flower's (weighted by each site's example count). Around it:
    updates with NaN/Inf are rejected with a logged reason instead of poisoning the
    average; the averaged weights are cast back to the model's dtypes (SecAgg+ returns
    float64) and saved as a checkpoint each round; metrics are aggregated by the task
    and recorded per site in run.json.
    """

    def __init__(self, task: Task, model: nn.Module, run: RunConfig, recorder: RunRecorder) -> None:
        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=run.fraction_evaluate,
            min_fit_clients=run.min_sites,
            min_evaluate_clients=run.min_sites if run.fraction_evaluate > 0 else 0,
            min_available_clients=run.min_sites,
            initial_parameters=ndarrays_to_parameters(task.get_weights(model)),
            on_fit_config_fn=self._fit_config,
            on_evaluate_config_fn=self._evaluate_config,
            accept_failures=True,
        )
        self.task = task
        self.model = model
        self.run = run
        self.recorder = recorder
        self.out_dir = Path(run.out_dir)

    def configure_fit(self, server_round, parameters, client_manager):  # type: ignore[no-untyped-def]
        instructions = super().configure_fit(server_round, parameters, client_manager)
        logger.info(
            "round %d/%d: %d sites training locally",
            server_round,
            self.run.num_rounds,
            len(instructions),
        )
        return instructions

    def _fit_config(self, server_round: int) -> dict[str, Scalar]:
        config: dict[str, Scalar] = {
            "server-round": server_round,
            "local-epochs": self.run.local_epochs,
            "lr": self.run.lr,
        }
        if self.run.secagg.enabled:
            # Sites refuse to send an update that SecAgg+ would clip or overflow.
            config["secagg-max-weight"] = self.run.secagg.max_weight
            config["secagg-clipping-range"] = self.run.secagg.clipping_range
        return config

    def _evaluate_config(self, server_round: int) -> dict[str, Scalar]:
        return {"server-round": server_round}

    def aggregate_fit(
        self,
        server_round: int,
        results: FitResults,
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        kept = []
        for proxy, res in results:
            try:
                check_finite(parameters_to_ndarrays(res.parameters), "site update")
                kept.append((proxy, res))
            except UpdateError as err:
                logger.error(
                    "round %d: %s: %s; excluded", server_round, _site(proxy, res.metrics), err
                )
                failures.append(err)
        for failure in failures:
            logger.warning("round %d: a site failed: %s", server_round, _reason(failure))
        if not kept:
            logger.error("round %d: no usable update; the global model is unchanged", server_round)
            return None, {}
        parameters, _ = super().aggregate_fit(server_round, kept, failures)
        if parameters is None:
            return None, {}
        self.task.set_weights(self.model, parameters_to_ndarrays(parameters))
        arrays = self.task.get_weights(self.model)
        per_site = {_site(p, r.metrics): dict(r.metrics) for p, r in kept}
        aggregated = self.task.aggregate_metrics([(r.num_examples, r.metrics) for _, r in kept])
        self.recorder.record_stage("fit", server_round, per_site, aggregated, len(failures))
        self.recorder.record_files(server_round, self._save(server_round, arrays))
        return ndarrays_to_parameters(arrays), dict(aggregated)

    def aggregate_evaluate(
        self,
        server_round: int,
        results: EvalResults,
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        results = [(p, r) for p, r in results if r.num_examples > 0]
        loss, _ = super().aggregate_evaluate(server_round, results, failures)
        per_site = {
            _site(p, r.metrics): {**r.metrics, "num_examples_val": r.num_examples}
            for p, r in results
        }
        aggregated = self.task.aggregate_metrics([(r.num_examples, r.metrics) for _, r in results])
        aggregated["num_examples_val"] = sum(r.num_examples for _, r in results)
        self.recorder.record_stage("evaluate", server_round, per_site, aggregated, len(failures))
        self.recorder.print_round(server_round)
        return loss, dict(aggregated)

    def _save(self, server_round: int, arrays: list[np.ndarray]) -> dict[str, str]:
        ckpt_dir = self.out_dir / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        ckpt = ckpt_dir / f"round-{server_round}.npz"
        np.savez(ckpt, *arrays)
        final = self.out_dir / "global_model.pt"
        torch.save(self.model.state_dict(), final)
        files = {"checkpoint": str(ckpt), "global_model": str(final)}
        files.update(self.task.on_round_end(self.model, server_round, self.out_dir))
        return files


def _site(proxy: ClientProxy, metrics: Mapping[str, Any]) -> str:
    return str(metrics.get("site", f"node-{proxy.cid}"))


def _reason(failure: object) -> str:
    if isinstance(failure, BaseException):
        return f"{type(failure).__name__}: {failure}"
    return "the site's reply was an error"
