"""Cross-site evaluation after the last round: each model scored at every connected site."""

from __future__ import annotations

import logging
from typing import Any, cast

from flwr.app import Context
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    NDArrays,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy
from flwr.server.workflow.default_workflows import default_evaluate_workflow
from flwr.serverapp.grid import Grid
from rich.console import Console
from rich.table import Table

from server.recording import RecordingStrategy
from shared.config import RunConfig
from shared.cross_site import GLOBAL, MODEL_KEY, main_metric
from shared.errors import RoundError

__all__ = ["CrossSiteWorkflow", "ModelPass"]

logger = logging.getLogger("medfleet.server")

Scores = dict[str, dict[str, Any]]


class ModelPass(Strategy):
    """A strategy that only evaluates: one model, sent to every connected site.

    Flower's own evaluate workflow runs it (message building, replies, failures), so a
    pass is exactly a round's evaluation with other weights: the sites score it on their
    validation split with the same code. `MODEL_KEY` in the instruction names the model;
    a site scores a site's local model as sent, the global one as in the rounds (with
    FedBN under its own normalisation layers). With `wait_for` > 0 the pass first waits,
    at most `timeout` seconds, for that many sites (an evaluation-only run); otherwise it
    asks the sites connected now, but for those in `skip`.
    """

    def __init__(
        self,
        name: str,
        arrays: NDArrays,
        server_round: int,
        site_names: dict[int, str],
        wait_for: int = 0,
        timeout: float = 3600.0,
        skip: set[int] | None = None,
    ) -> None:
        self.name = name
        self.arrays = arrays
        self.server_round = server_round
        self.site_names = site_names
        self.wait_for = wait_for
        self.timeout = timeout
        self.skip = set(skip or ())
        self.scores: Scores = {}
        self.failures = 0
        #: The nodes asked to score the model, and those that replied.
        self.asked: set[int] = set()
        self.replied: set[int] = set()

    def __repr__(self) -> str:
        return f"ModelPass({self.name!r})"

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return None

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        return []

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]], failures: list[Any]
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        return None, {}

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        if self.wait_for and not client_manager.wait_for(self.wait_for, int(self.timeout)):
            raise RoundError(
                f"only {client_manager.num_available()} sites are connected, the evaluation "
                f"needs min-sites={self.wait_for}; waited round-timeout={self.timeout:g} s: "
                "start the missing site daemons (or lower 'min-sites') and rerun"
            )
        config: dict[str, Scalar] = {"server-round": self.server_round, MODEL_KEY: self.name}
        instruction = EvaluateIns(ndarrays_to_parameters(self.arrays), config)
        proxies = [p for p in client_manager.all().values() if p.node_id not in self.skip]
        self.asked = {proxy.node_id for proxy in proxies}
        return [(proxy, instruction) for proxy in sorted(proxies, key=lambda p: p.node_id)]

    def aggregate_evaluate(
        self, server_round: int, results: list[tuple[ClientProxy, EvaluateRes]], failures: list[Any]
    ) -> tuple[float | None, dict[str, Scalar]]:
        self.replied = {proxy.node_id for proxy, _ in results}
        for proxy, res in results:
            site = str(res.metrics.get("site", f"node-{proxy.node_id}"))
            self.site_names[proxy.node_id] = site
            if res.num_examples > 0:  # a site without validation data has no score
                metrics = {k: v for k, v in res.metrics.items() if k != "site"}
                self.scores[site] = {**metrics, "num_examples_val": res.num_examples}
        self.failures = len(failures)
        if failures:
            logger.warning("cross-site %s: %d sites failed to score it", self.name, len(failures))
        return None, {}

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        return None


class CrossSiteWorkflow:
    """After the last round: the final global model, and with ``cross-site-local`` each
    site's last local model, scored by every connected site on its own held-out data.

    Every site is asked once to score the final global model. Where the last round's
    evaluation asked it, that evaluation is its cell of the `global` row (the same
    weights, instruction and code: a second pass would repeat it); one pass asks the
    sites it did not ask (all of them in an evaluation-only run). Each local model is one
    pass to every site, its own included (the table's diagonal). A site that did not
    reply once is not asked again, so a dead site costs one round-timeout, not one per
    model. The table goes to run.json under "cross_site" and to the console.
    """

    def __init__(self, run: RunConfig) -> None:
        self.run = run
        self.evaluate_only = bool(run.option("evaluate-model"))

    def __call__(self, grid: Grid, context: Context) -> None:
        legacy = cast(LegacyContext, context)
        recording = cast(RecordingStrategy, legacy.strategy)
        final = legacy.config.num_rounds
        scores, asked, silent = _last_evaluation(recording, final)
        failures = {GLOBAL: len(silent)}
        sources = [f"round {final} evaluate"] if asked else []
        connected = {proxy.node_id for proxy in legacy.client_manager.all().values()}
        models = _local_models(recording)
        if self.evaluate_only or connected - asked:
            models = {GLOBAL: recording.global_arrays, **models}
            sources.append("cross-site pass")
        table: dict[str, Scores] = {GLOBAL: scores}
        for name, arrays in models.items():
            done = self._score(
                grid, legacy, recording, name, arrays, asked if name == GLOBAL else silent
            )
            table[name] = {**table.get(name, {}), **done.scores}
            failures[name] = failures.get(name, 0) + done.failures
            silent |= done.asked - done.replied
        if not table[GLOBAL]:
            message = "no site scored the model within round-timeout"
            if self.evaluate_only:
                raise RoundError(f"{message}: check the site logs and rerun")
            logger.warning("cross-site evaluation: %s", message)
        record = _table(final, table, failures, " + ".join(sources))
        recording.recorder.record_cross_site(record)
        print_table(recording.recorder.console, record)

    def _score(
        self,
        grid: Grid,
        legacy: LegacyContext,
        recording: RecordingStrategy,
        name: str,
        arrays: NDArrays,
        skip: set[int],
    ) -> ModelPass:
        """One pass of Flower's evaluate workflow with `name`'s weights, `skip` not asked."""
        logger.info("cross-site evaluation: model %s at every site", name)
        wait = self.run.min_sites if self.evaluate_only else 0
        final, timeout = legacy.config.num_rounds, self.run.round_timeout
        strategy = ModelPass(name, arrays, final, recording.site_names, wait, timeout, skip)
        one = LegacyContext(legacy, legacy.config, strategy, legacy.client_manager)
        default_evaluate_workflow(grid, one)
        return strategy


def _last_evaluation(recording: RecordingStrategy, final: int) -> tuple[Scores, set[int], set[int]]:
    """The last round's evaluation of the final model: per-site scores, the nodes it
    asked and those of them that did not reply; nothing when it did not score that model."""
    server_round, asked, replied = recording.evaluated
    if final == 0 or server_round != final or recording.last_aggregated_round != final:
        return {}, set(), set()
    sites = recording.recorder.stage_sites("evaluate", final)
    scores = {site: {k: v for k, v in m.items() if k != "site"} for site, m in sites.items()}
    return scores, set(asked), set(asked) - set(replied)


def _local_models(recording: RecordingStrategy) -> dict[str, NDArrays]:
    """Each site's last local model by table name (a site called 'global' gets a suffix)."""
    return {
        (f"{site} (local)" if site == GLOBAL else site): arrays
        for site, arrays in sorted(recording.local_models.items())
    }


def _table(
    final: int, scores: dict[str, Scores], failures: dict[str, int], source: str
) -> dict[str, Any]:
    """The run.json form: models (global first), sites, and every model's metrics per site."""
    sites = sorted({site for per_site in scores.values() for site in per_site})
    return {
        "round": final,
        "models": list(scores),
        "sites": sites,
        "main_metric": main_metric(scores),
        "global_from": source,
        "failures": failures,
        "scores": scores,
    }


def print_table(console: Console, table: dict[str, Any]) -> None:
    """The main metric of each model (rows) at each site (columns)."""
    metric = table["main_metric"]
    shown = Table(title=f"Cross-site evaluation: {metric}", caption="rows: models; columns: sites")
    shown.add_column("model")
    for site in table["sites"]:
        shown.add_column(site, justify="right")
    for model in table["models"]:
        cells = [table["scores"][model].get(site, {}).get(metric) for site in table["sites"]]
        shown.add_row(model, *("-" if v is None else f"{v:.3f}" for v in cells))
    console.print(shown)
