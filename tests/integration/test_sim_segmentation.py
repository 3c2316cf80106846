"""End-to-end simulation of the segmentation task on synthetic MR sites (series + DICOM SEG)."""

import json
from pathlib import Path

import numpy as np
import pytest

from server.checkpoint import load_checkpoint
from shared.config import RunConfig
from shared.tasks import get_task
from simulations.runner import SimulationOptions, run_simulation_job

# The demo settings: a small 3D U-Net that learns the synthetic nuclei in three rounds.
DEMO = {
    "task": "segmentation",
    "local-epochs": 5,
    "batch-size": 4,
    "lr": 0.01,
    "seg-channels": "8,16,32",
    "seg-res-units": 1,
    "seg-samples-per-case": 8,
}


@pytest.mark.slow
def test_two_sites_learn_to_segment_and_every_site_reports(tmp_path: Path) -> None:
    # Prepare
    data, out = tmp_path / "data", tmp_path / "out"
    run = RunConfig.from_mapping(
        {
            **DEMO,
            "num-server-rounds": 3,
            "min-sites": 2,
            "sim-data-root": str(data),
            "out-dir": str(out),
            "device": "cpu",
        }
    )

    # Execute
    record = run_simulation_job(SimulationOptions(run, 2, data, synth_scale=0.5))

    # Assert: the global model moved from its initial weights and kept moving.
    assert record["status"] == "completed"
    task = get_task(run)
    initial = task.get_weights(task.build_model())
    first, last = (load_checkpoint(out / "checkpoints" / f"round-{r}.npz").state for r in (1, 3))
    assert any(not np.allclose(f, a) for f, a in zip(first.values(), initial, strict=True))
    assert any(not np.allclose(last[n], first[n]) for n in first)
    # Every site scores its own validation cases in every round.
    for entry in record["rounds"]:
        assert set(entry["evaluate"]["sites"]) == {"site-1", "site-2"}
        for metrics in entry["evaluate"]["sites"].values():
            assert {"dice", "dice_1", "dice_2", "hd95", "loss"} <= set(metrics)
            assert metrics["num_examples_val"] >= 1
    # Dice (weighted by validation cases) rises clearly over the rounds.
    dice = [r["evaluate"]["aggregated"]["dice"] for r in record["rounds"]]
    assert dice[-1] > dice[0] + 0.1, dice
    assert json.loads((out / "run.json").read_text()) == record
