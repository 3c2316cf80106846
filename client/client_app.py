"""The MedFleet ClientApp: one per site, for simulation and deployment alike."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.client import Client, ClientApp
from flwr.common import Context

from client.dp import dp_client_mod
from client.mods import privacy_guard_mod, secagg_mod

__all__ = ["app", "build_client_app"]


def build_client_app(overrides: Mapping[str, Any] | None = None) -> ClientApp:
    """Build the ClientApp; `overrides` fuse over the run config (used by `medfleet sim`)."""
    bound = dict(overrides or {})

    def client_fn(context: Context) -> Client:
        # Deployed SuperNodes start a process per message; the SecAgg+ key-exchange stages
        # never reach client_fn, so torch and MONAI are imported only when training.
        from client.data_cache import load_site_cached
        from client.site_client import SiteClient
        from shared.config import RunConfig, SiteConfig
        from shared.tasks import get_task

        run = RunConfig.from_mapping({**context.run_config, **bound})
        site = SiteConfig.from_node_config(context.node_config, run)
        task = get_task(run)
        data = load_site_cached(task, site.data_dir, site.cache_dir)
        dump = context.node_config.get("debug-dump-dir")
        dump_dir = Path(str(dump)) if dump else None
        return SiteClient(task, data, run, site, dump_dir, context.state).to_client()

    # privacy_guard_mod is outermost so that it also scrubs failures inside SecAgg+;
    # dp_client_mod is inside SecAgg+, so an update is clipped before it is masked.
    return ClientApp(
        client_fn=client_fn, mods=[privacy_guard_mod, secagg_mod, dp_client_mod(bound)]
    )


app = build_client_app()
