"""One federated round of segmentation on two series per study (T1 + T2, seg-inputs)."""

from pathlib import Path

import pytest

from server.checkpoint import load_checkpoint
from shared.config import RunConfig
from simulations.runner import SimulationOptions, run_simulation_job
from simulations.synth import generate_sites

TINY = {
    "task": "segmentation",
    "local-epochs": 1,
    "batch-size": 4,
    "seg-channels": "4,8",
    "seg-patch-size": 16,
    "seg-res-units": 1,
    "seg-samples-per-case": 2,
    "seg-inputs": "MR:T1*,MR:T2*",
}


@pytest.mark.slow
def test_a_round_on_t1_and_t2_trains_a_two_channel_u_net(tmp_path: Path) -> None:
    # Prepare: two-contrast sites, generated before the run (sim would write one contrast)
    data, out = tmp_path / "data", tmp_path / "out"
    generate_sites(data, n_sites=2, seed=5, task="segmentation-t1t2", scale=0.2)
    run = RunConfig.from_mapping(
        {**TINY, "num-server-rounds": 1, "min-sites": 2, "sim-data-root": str(data),
         "out-dir": str(out), "device": "cpu"}
    )  # fmt: skip

    # Execute
    record = run_simulation_job(SimulationOptions(run, 2, data))

    # Assert: both sites trained and scored; the first convolution reads 2 channels
    assert record["status"] == "completed"
    sites = record["rounds"][0]["evaluate"]["sites"]
    assert set(sites) == {"site-1", "site-2"}
    assert all("dice_2" in metrics for metrics in sites.values())
    state = load_checkpoint(out / "checkpoints" / "round-1.npz").state
    first_conv = next(v for k, v in state.items() if k.endswith("conv.weight") and v.ndim == 5)
    assert first_conv.shape[1] == 2
