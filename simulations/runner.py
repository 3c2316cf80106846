"""Run a federated training on one machine: virtual sites under Flower's simulation engine."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import RunConfig, site_folders
from shared.errors import ConfigError

__all__ = ["SimulationOptions", "run_simulation_job"]

logger = logging.getLogger("medfleet.sim")


@dataclass(frozen=True)
class SimulationOptions:
    """What `medfleet sim` was asked for."""

    run: RunConfig
    num_sites: int
    data_dir: Path
    synth_scale: float = 1.0


def prepare_data(options: SimulationOptions) -> list[Path]:
    """Use the sites under `data_dir`, generating synthetic sites when there are none."""
    sites = site_folders(options.data_dir)
    if not sites:
        from simulations.synth import generate_sites

        logger.info(
            "no site data in %s: generating %d synthetic sites", options.data_dir, options.num_sites
        )
        sites = generate_sites(
            options.data_dir,
            options.num_sites,
            options.run.seed,
            task=options.run.task,
            scale=options.synth_scale,
        )
    if len(sites) < options.num_sites:
        raise ConfigError(
            f"--sites {options.num_sites} but the data directory holds {len(sites)} site "
            "folders; lower --sites or point --data at an empty directory to generate them"
        )
    return sites[: options.num_sites]


def _backend_config(num_sites: int, device: str) -> dict[str, Any]:
    import torch

    use_gpu = device != "cpu" and torch.cuda.is_available()
    return {
        "client_resources": {"num_cpus": 1, "num_gpus": 1.0 / num_sites if use_gpu else 0.0},
        "init_args": {"include_dashboard": False, "log_to_driver": True},
    }


def run_simulation_job(options: SimulationOptions) -> dict[str, Any]:
    """Generate data if needed, run the ServerApp and ClientApps in simulation.

    Returns the run record (run.json) as a dict.
    """
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    # Ray's future default (leave CUDA_VISIBLE_DEVICES alone when no GPU is asked for);
    # setting it also silences Ray's warning about the change.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    # Ray runs its workers at nice 15 so that a driver stays responsive; here the sites'
    # training is the job, and at 15 any other busy process on the machine starves it.
    os.environ.setdefault("RAY_worker_niceness", "0")
    from flwr.simulation import run_simulation

    from client.client_app import build_client_app
    from server.server_app import build_server_app
    from simulations.pickup import quicker_pickup

    if not quicker_pickup():
        logger.debug("this Flower release feeds the sites differently: its own pickup wait")

    prepare_data(options)
    out_dir = Path(options.run.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overrides = options.run.to_mapping()
    run_simulation(
        server_app=build_server_app(overrides),
        client_app=build_client_app(overrides),
        num_supernodes=options.num_sites,
        backend_config=_backend_config(options.num_sites, options.run.device),
    )
    record_path = out_dir / "run.json"
    if not record_path.is_file():
        raise ConfigError("the simulation ended before the server started; see the log above")
    return json.loads(record_path.read_text())
