"""The MedFleet ServerApp: a registry strategy inside MedFleet's round loop and record."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from flwr.common import Context, Scalar, ndarrays_to_parameters
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import Strategy

from server.checkpoint import Checkpoint
from server.cross_site import CrossSiteWorkflow
from server.privacy import with_privacy
from server.recording import RecordingStrategy, innermost
from server.resume import check_compatible, latest_checkpoint, restore_strategy_state
from server.run_record import RunRecorder
from server.strategies import build_strategy
from server.workflow import BoundedClientManager, MedFleetWorkflow
from shared.bundle import MODEL_FILE, load_for_run, model_path
from shared.config import RunConfig, SecAggConfig
from shared.errors import ConfigError, MedFleetError
from shared.http_retry import retry_server_errors
from shared.object_pull import quicker_object_pulls
from shared.tasks import get_task
from shared.tasks.base import Task
from shared.weights import norm_state_keys

__all__ = ["app", "build_server_app", "fit_config"]

logger = logging.getLogger("medfleet.server")


def build_server_app(overrides: Mapping[str, Any] | None = None) -> ServerApp:
    """Build the ServerApp; `overrides` fuse over the run config (used by `medfleet sim`)."""
    bound = dict(overrides or {})
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        run = RunConfig.from_mapping({**context.run_config, **bound})
        # The sites' replies are pulled sooner, and a reply whose upload was cut off (a
        # site killed mid-upload) is given up after round-timeout, not Flower's 180 s.
        quicker_object_pulls(give_up_after_s=run.round_timeout)
        # A moment's HTTP 500 from the SuperLink (its database locked) is retried, not fatal.
        retry_server_errors()
        _run(grid, context, run)

    return server_app


def _check_local_norm(run: RunConfig, model: Any) -> None:
    """FedBN needs normalisation layers with state; refuse it before any round otherwise."""
    if run.local_norm and not norm_state_keys(model):
        hint = {"segmentation": "seg-norm = 'batch'"}.get(run.task, "a model with batch norm")
        raise ConfigError(
            f"strategy '{run.strategy}' with local-norm keeps each site's normalisation "
            f"layers, but this {run.task} model has none with state: set {hint}, or use "
            "fedavg"
        )


def _run(grid: Grid, context: Context, run: RunConfig) -> None:
    task = get_task(run)
    model = task.build_model()
    out_dir = Path(run.resume_from or run.out_dir)
    checkpoint = _checkpoint(run)
    if checkpoint is not None:
        task.set_weights(model, list(checkpoint.state.values()))
    done = checkpoint.server_round if checkpoint else 0
    recorder = RunRecorder(
        out_dir, run, task.table_metrics, resume_after=done if run.resume_from else None
    )
    try:
        _check_local_norm(run, model)
        outputs = _evaluated_model(run, model) or {"final_model": str(out_dir / MODEL_FILE)}
        strategy = RecordingStrategy(
            _strategy(run, task, model, checkpoint), task, model, run, recorder, out_dir
        )
        legacy = LegacyContext(
            context,
            # MedFleetWorkflow applies round-timeout itself; Flower's workflows never read it.
            config=ServerConfig(num_rounds=run.num_rounds),
            strategy=strategy,
            client_manager=BoundedClientManager(run.round_timeout),
        )
        fit = _fit_workflow(run, out_dir)
        MedFleetWorkflow(fit, done + 1, run.round_timeout, CrossSiteWorkflow(run))(grid, legacy)
    except MedFleetError as err:
        logger.error("run stopped: %s", err)
        recorder.finish("failed", {"error": str(err)})
        raise
    except BaseException:
        recorder.finish("failed")
        raise
    recorder.finish("completed", outputs)
    logger.info("run finished; record: %s", recorder.path)


def _strategy(run: RunConfig, task: Task, model: Any, checkpoint: Checkpoint | None) -> Strategy:
    """The registry strategy from `model`'s weights, under DP when training with it."""
    initial = ndarrays_to_parameters(task.get_weights(model))
    strategy = build_strategy(run, initial, fit_config(run), _evaluate_config)
    if checkpoint is not None:
        restore_strategy_state(innermost(strategy), checkpoint)
        logger.info("resuming after round %d of %d", checkpoint.server_round, run.num_rounds)
    # An evaluation-only run trains nothing, so there is nothing to clip or noise.
    return strategy if run.option("evaluate-model") else with_privacy(strategy, run)


def _evaluated_model(run: RunConfig, model: Any) -> dict[str, Any] | None:
    """An evaluation-only run: the model file's weights into `model`, and what to record."""
    source = str(run.option("evaluate-model"))
    if not source:
        return None
    bundle = load_for_run(Path(source), run, model)
    if bundle.config.get("seed", run.seed) != run.seed:
        logger.warning(
            "the model was trained with seed %s, this run has seed %s: at the sites it was "
            "trained on, other patients are held out (some of them training patients)",
            bundle.config.get("seed"),
            run.seed,
        )
    path = model_path(Path(source))
    logger.info("evaluation only: scoring %s at every site", path.name)
    return {
        "evaluated_model": {
            "path": str(path),
            "sha256": bundle.fingerprint(),
            "trained": bundle.provenance,
        }
    }


def _checkpoint(run: RunConfig) -> Checkpoint | None:
    if not run.resume_from:
        return None
    checkpoint = latest_checkpoint(Path(run.resume_from))
    if checkpoint is not None:
        check_compatible(checkpoint, run.to_mapping())
    return checkpoint


def fit_config(run: RunConfig) -> Any:
    """The per-round fit instructions every site receives (strategies may add keys)."""

    def config(server_round: int) -> dict[str, Scalar]:
        values: dict[str, Scalar] = {
            "server-round": server_round,
            "local-epochs": run.local_epochs,
            "lr": run.lr,
        }
        if run.secagg.enabled:
            # Sites refuse to send an update that SecAgg+ would clip or overflow.
            values["secagg-max-weight"] = secagg_settings(run).max_weight
            values["secagg-clipping-range"] = run.secagg.clipping_range
        return values

    return config


def _evaluate_config(server_round: int) -> dict[str, Scalar]:
    return {"server-round": server_round}


def _fit_workflow(run: RunConfig, out_dir: Path) -> Any:
    """Flower's SecAgg+ fit workflow when enabled, else the default fit workflow."""
    if not run.secagg.enabled:
        return None
    from server.secagg_workflow import build_fit_workflow

    record = bool(run.option("debug-record-masked"))
    return build_fit_workflow(secagg_settings(run), out_dir / "secagg-debug" if record else None)


def secagg_settings(run: RunConfig) -> SecAggConfig:
    """The run's SecAgg+ settings; with ``dp = client`` every weight is 1, so max-weight is 1.

    SecAgg+ scales each update by weight / max-weight before quantising it, so a
    max-weight of 10 000 with weights of 1 would cost four decimal digits of precision
    (measured: quantisation error 5x the DP noise itself).
    """
    if str(run.option("dp")) == "client":
        return replace(run.secagg, max_weight=1.0)
    return run.secagg


app = build_server_app()
