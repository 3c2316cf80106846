"""A 2-site, 2-round federated GAN simulation end to end under Flower's simulation engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.checkpoint import load_checkpoint
from shared.config import RunConfig
from simulations.runner import SimulationOptions, run_simulation_job
from simulations.synth import generate_sites


@pytest.mark.slow
def test_two_site_gan_simulation_trains_reports_and_saves_samples(tmp_path: Path) -> None:
    # Prepare
    data, out = tmp_path / "data", tmp_path / "out"
    # The GAN needs images only: the classification sites' DICOM images serve it.
    generate_sites(data, 2, seed=7, task="classification", scale=0.3)
    run = RunConfig.from_mapping(
        {
            "task": "gan",
            "num-server-rounds": 2,
            "batch-size": 16,
            "seed": 7,
            "min-sites": 2,
            "device": "cpu",
            "sim-data-root": str(data),
            "out-dir": str(out),
            "gan-image-size": 32,
            "gan-width": 8,
            "gan-latent-dim": 32,
            "gan-steps-per-round": 5,
        }
    )
    # Execute
    record = run_simulation_job(SimulationOptions(run, num_sites=2, data_dir=data))
    # Assert
    assert record["status"] == "completed"
    rounds = record["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    first, second = (load_checkpoint(out / "checkpoints" / f"round-{r}.npz").state for r in (1, 2))
    assert any(not np.array_equal(first[k], second[k]) for k in first)
    for entry in rounds:
        sites = entry["evaluate"]["sites"]
        assert sorted(sites) == ["site-1", "site-2"]
        assert all({"g_loss", "d_loss", "fd", "mmd"} <= set(m) for m in sites.values())
        assert np.isfinite(entry["evaluate"]["aggregated"]["fd"])
        png = out / "samples" / f"round-{entry['round']}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
        assert entry["files"]["samples"] == str(png)
