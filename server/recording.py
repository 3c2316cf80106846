"""RecordingStrategy: screening, checkpoints and the run record around any Flower strategy."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    NDArrays,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy
from torch import nn

from server.checkpoint import save_checkpoint
from server.privacy import round_privacy
from server.received_dump import dump_received
from server.run_record import RunRecorder, timestamp
from server.screening import screen_updates
from server.strategies import strategy_state_attrs
from shared.bundle import MODEL_FILE, save_bundle
from shared.config import RunConfig
from shared.errors import RoundError
from shared.tasks.base import Task

__all__ = ["RecordingStrategy", "innermost"]

logger = logging.getLogger("medfleet.server")

FitResults = list[tuple[ClientProxy, FitRes]]
EvalResults = list[tuple[ClientProxy, EvaluateRes]]
Failures = list[Any]


class RecordingStrategy(Strategy):
    """Wrap a Flower strategy (the outermost layer) with MedFleet's round bookkeeping.

    Before the inner strategy aggregates, updates with the wrong structure, NaN/Inf or a
    change far out of line with the other sites' are left out, each with a log line
    naming the site. A round with fewer usable updates than `min-sites` raises
    RoundError. After it, the global weights are cast to the model's dtypes (SecAgg+
    returns float64), checkpointed with the strategy's optimiser state, and every
    site's metrics go to run.json. Because this wrapper is outermost, what it saves is
    exactly the model the next round starts from, whatever the inner layers (e.g. DP
    noise) did.
    """

    def __init__(
        self,
        inner: Strategy,
        task: Task,
        model: nn.Module,
        run: RunConfig,
        recorder: RunRecorder,
        out_dir: Path,
    ) -> None:
        self.inner = inner
        self.task = task
        self.model = model
        self.run = run
        self.recorder = recorder
        self.out_dir = out_dir
        self.global_arrays = task.get_weights(model)
        self._sent = self.global_arrays
        self.last_aggregated_round = 0
        self.site_names: dict[int, str] = {}
        #: With cross-site-local: each site's model as it sent it in the last round.
        self.local_models: dict[str, NDArrays] = {}
        #: The last evaluated round, the nodes asked to score it and those that replied.
        self.evaluated: tuple[int, set[int], set[int]] = (0, set(), set())
        self._sampled: dict[int, list[int]] = {}
        #: Per round: start (UTC text), start and end of training (monotonic seconds).
        self._clock: dict[int, tuple[str, float, float]] = {}

    def __repr__(self) -> str:
        return f"RecordingStrategy({self.inner!r})"

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return self.inner.initialize_parameters(client_manager)

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self.global_arrays = parameters_to_ndarrays(parameters)
        self._clock[server_round] = (timestamp(), time.monotonic(), time.monotonic())
        instructions = self.inner.configure_fit(server_round, parameters, client_manager)
        self._sampled[server_round] = [proxy.node_id for proxy, _ in instructions]
        # What the sites were sent, which their updates are screened against: the global
        # model, or more than it where the strategy sends more (SCAFFOLD's control variate).
        self._sent = self.global_arrays
        if instructions and instructions[0][1].parameters is not parameters:
            self._sent = parameters_to_ndarrays(instructions[0][1].parameters)
        logger.info(
            "round %d/%d: %d sites training locally (%s)",
            server_round,
            self.run.num_rounds,
            len(instructions),
            self.run.strategy,
        )
        return instructions

    def aggregate_fit(
        self, server_round: int, results: FitResults, failures: Failures
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self._dump_received("fit", server_round, results, failures)
        self._learn_names(results)
        results = self._in_site_order(results)
        kept, rejected = self._screen(server_round, results)
        replied = {proxy.node_id for proxy, _ in results}
        dropped = [self._name(n) for n in self._sampled.get(server_round, []) if n not in replied]
        errors = [_reason(failure) for failure in failures]
        for error in errors:
            logger.warning("round %d: a site failed: %s", server_round, error)
        if len(kept) < self.run.min_sites:
            raise RoundError(
                f"round {server_round} has {len(kept)} usable site updates, fewer than "
                f"min-sites={self.run.min_sites} (dropped: {', '.join(dropped) or 'none'}; "
                f"refused: {', '.join(rejected) or 'none'}); the checkpoints of the rounds "
                "before are intact: bring the sites back and resume the run"
            )
        parameters, _ = self.inner.aggregate_fit(server_round, kept, failures)
        if parameters is None:
            raise RoundError(f"round {server_round}: the strategy produced no global model")
        self.task.set_weights(self.model, parameters_to_ndarrays(parameters))
        self.global_arrays = self.task.get_weights(self.model)
        self._keep_local_models(server_round, kept)
        per_site = {self._name(p.node_id): dict(r.metrics) for p, r in kept}
        aggregated = self.task.aggregate_metrics([(r.num_examples, r.metrics) for _, r in kept])
        with self.recorder.one_write():
            self.recorder.record_stage("fit", server_round, per_site, aggregated, len(failures))
            privacy = round_privacy(self.run, server_round, per_site)
            self.recorder.record_privacy(server_round, privacy)
            self.recorder.record_sites(
                server_round, dropped=dropped, refused=rejected, errors=errors
            )
            self.recorder.record_files(server_round, self._save(server_round, sorted(per_site)))
        self.last_aggregated_round = server_round
        if server_round in self._clock:
            started, t0, _ = self._clock[server_round]
            self._clock[server_round] = (started, t0, time.monotonic())
        return ndarrays_to_parameters(self.global_arrays), dict(aggregated)

    def _screen(self, server_round: int, results: FitResults) -> tuple[FitResults, list[str]]:
        updates = [parameters_to_ndarrays(res.parameters) for _, res in results]
        rejections = screen_updates(updates, self._sent, self.run.max_update_norm_ratio)
        refused = {r.index: r.reason for r in rejections}
        for index, reason in refused.items():
            site = self._name(results[index][0].node_id)
            logger.error("round %d: update of site %s refused: %s", server_round, site, reason)
        kept = [pair for i, pair in enumerate(results) if i not in refused]
        return kept, sorted(self._name(results[i][0].node_id) for i in refused)

    def _keep_local_models(self, server_round: int, kept: FitResults) -> None:
        """In the last round with cross-site-local, keep each site's model for cross-site
        evaluation (never under SecAgg+ or DP: refused at the door); model arrays only, a
        SCAFFOLD update's control change after them left out."""
        if server_round != self.run.num_rounds or not self.run.option("cross-site-local"):
            return
        size = len(self.model.state_dict())
        self.local_models = {
            self._name(proxy.node_id): parameters_to_ndarrays(res.parameters)[:size]
            for proxy, res in kept
        }

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        instructions = self.inner.configure_evaluate(server_round, parameters, client_manager)
        self.evaluated = (server_round, {proxy.node_id for proxy, _ in instructions}, set())
        return instructions

    def aggregate_evaluate(
        self, server_round: int, results: EvalResults, failures: Failures
    ) -> tuple[float | None, dict[str, Scalar]]:
        self._dump_received("evaluate", server_round, results, failures)
        asked = self.evaluated[1] if self.evaluated[0] == server_round else set()
        self.evaluated = (server_round, asked, {proxy.node_id for proxy, _ in results})
        results = [(p, r) for p, r in results if r.num_examples > 0]
        self._learn_names(results)
        results = self._in_site_order(results)
        loss, _ = self.inner.aggregate_evaluate(server_round, results, failures)
        per_site = {
            self._name(p.node_id): {**r.metrics, "num_examples_val": r.num_examples}
            for p, r in results
        }
        aggregated = self.task.aggregate_metrics([(r.num_examples, r.metrics) for _, r in results])
        aggregated["num_examples_val"] = sum(r.num_examples for _, r in results)
        # Written apart: the round's time (the write after) includes this write.
        self.recorder.record_stage("evaluate", server_round, per_site, aggregated, len(failures))
        if server_round in self._clock:
            started, t0, fit_done = self._clock.pop(server_round)
            self.recorder.record_timing(server_round, started, time.monotonic() - t0, fit_done - t0)
        self.recorder.print_round(server_round)
        return loss, dict(aggregated)

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        return self.inner.evaluate(server_round, parameters)

    def _dump_received(
        self, stage: str, server_round: int, results: list[Any], failures: Failures
    ) -> None:
        """Tests and audits (`debug-record-masked`): keep every reply exactly as received."""
        if bool(self.run.option("debug-record-masked")):
            folder = self.out_dir / "received-debug"
            dump_received(folder, stage, server_round, results, failures)

    def _learn_names(self, results: FitResults | EvalResults) -> None:
        """Remember each replying node's site name (from its metrics) for later rounds."""
        for proxy, res in results:
            self.site_names[proxy.node_id] = str(res.metrics.get("site", f"node-{proxy.node_id}"))

    def _in_site_order(self, results: list[Any]) -> list[Any]:
        """Replies sorted by site name: they arrive in whatever order the sites finish, and
        the sums of an aggregation differ in their last bits with the order, which a few
        rounds of training grow into different models. Sorted, a run is reproducible."""
        return sorted(results, key=lambda pair: (self._name(pair[0].node_id), pair[0].node_id))

    def _name(self, node_id: int) -> str:
        return self.site_names.get(node_id, f"node-{node_id}")

    def _save(self, server_round: int, sites: list[str]) -> dict[str, str]:
        names = list(self.model.state_dict())
        ckpt = save_checkpoint(
            self.out_dir / "checkpoints" / f"round-{server_round}.npz",
            server_round,
            names,
            self.global_arrays,
            strategy_state_attrs(innermost(self.inner)),
            self.run.to_mapping(),
        )
        provenance = {
            "round": server_round,
            "rounds": self.run.num_rounds,
            "sites": sites,
            "strategy": self.run.strategy,
            "run_started": self.recorder.record.get("started"),
            "saved": timestamp(),
            "medfleet_version": self.recorder.record.get("medfleet_version"),
        }
        final = save_bundle(self.out_dir / MODEL_FILE, self.task, self.model, provenance)
        files = {"checkpoint": str(ckpt), "global_model": str(final)}
        files.update(self.task.on_round_end(self.model, server_round, self.out_dir))
        return files


def innermost(strategy: Strategy) -> Strategy:
    """The aggregation rule itself, under any wrappers that keep it in `.strategy`."""
    while isinstance(getattr(strategy, "strategy", None), Strategy):
        strategy = strategy.strategy  # type: ignore[attr-defined]
    return strategy


def _reason(failure: object) -> str:
    """A failure as text: a site's error reply carries only MedFleet's scrubbed reason."""
    if isinstance(failure, BaseException):
        reason = getattr(failure.args[0], "reason", None) if failure.args else None
        if reason is not None:
            return str(reason)
        return f"{type(failure).__name__}: {failure}"
    if isinstance(failure, tuple) and len(failure) == 2:
        metrics: Mapping[str, Any] = getattr(failure[1], "metrics", {}) or {}
        return f"the reply of site {metrics.get('site', 'unknown')} was an error"
    return "the site's reply was an error"
