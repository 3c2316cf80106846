"""The MedFleet ServerApp: FedAvg through Flower's legacy-compatible workflows."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.common import Context
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.workflow import DefaultWorkflow

from server.run_record import RunRecorder
from server.strategy import MedFleetFedAvg
from shared.config import RunConfig
from shared.tasks import get_task

__all__ = ["app", "build_server_app"]

logger = logging.getLogger("medfleet.server")


def build_server_app(overrides: Mapping[str, Any] | None = None) -> ServerApp:
    """Build the ServerApp; `overrides` fuse over the run config (used by `medfleet sim`)."""
    bound = dict(overrides or {})
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        run = RunConfig.from_mapping({**context.run_config, **bound})
        task = get_task(run)
        model = task.build_model()
        out_dir = Path(run.out_dir)
        recorder = RunRecorder(out_dir, run, task.table_metrics)
        strategy = MedFleetFedAvg(task, model, run, recorder)
        legacy = LegacyContext(
            context, config=ServerConfig(num_rounds=run.num_rounds), strategy=strategy
        )
        workflow = DefaultWorkflow(fit_workflow=_fit_workflow(run, out_dir))
        try:
            workflow(grid, legacy)
        except BaseException:
            recorder.finish("failed")
            raise
        recorder.finish("completed", {"final_model": str(out_dir / "global_model.pt")})
        logger.info("run finished; record: %s", recorder.path)

    return server_app


def _fit_workflow(run: RunConfig, out_dir: Path) -> Any:
    """Flower's SecAgg+ fit workflow when enabled, else the default fit workflow."""
    if not run.secagg.enabled:
        return None
    from server.secagg_workflow import build_fit_workflow
    from shared.secagg import validate_secagg

    validate_secagg(run.secagg, run.min_sites)
    record = bool(run.options.get("debug-record-masked", False))
    return build_fit_workflow(run.secagg, out_dir / "secagg-debug" if record else None)


app = build_server_app()
