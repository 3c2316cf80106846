"""DP in real simulated federations: the noise the run adds, and the budget it reports."""

from pathlib import Path

import numpy as np
import pytest

from server.checkpoint import load_checkpoint
from shared.config import RunConfig
from shared.privacy import rdp_epsilon
from shared.tasks import get_task
from simulations.runner import SimulationOptions, run_simulation_job
from simulations.synth import generate_sites

pytestmark = pytest.mark.slow

SITES = 3
SMALL = {"num-server-rounds": 2, "image-size": 32, "min-sites": SITES, "device": "cpu"}


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("dp") / "data"
    generate_sites(data, n_sites=SITES, seed=5, scale=0.3)
    return data


def _run(data: Path, out: Path, **config: object) -> tuple[RunConfig, dict]:
    run = RunConfig.from_mapping(
        {**SMALL, "sim-data-root": str(data), "out-dir": str(out), **config}
    )
    record = run_simulation_job(SimulationOptions(run, SITES, data))
    assert record["status"] == "completed", record.get("error")
    return run, record


def test_site_level_dp_under_secagg_noises_the_model_at_the_configured_scale(
    sites: Path, tmp_path: Path
) -> None:
    # Prepare: updates clipped to 0.001, noise multiplier 5: the round's change is noise
    config = {"dp": "client", "dp-noise-multiplier": 5.0, "dp-clip-norm": 1e-3, "secagg": True}

    # Execute
    run, record = _run(sites, tmp_path, **config)

    # Assert 1: the global model moved by N(0, (z C / 3)^2) per weight, and no more
    initial = get_task(run).get_weights(get_task(run).build_model())
    first = list(load_checkpoint(tmp_path / "checkpoints" / "round-1.npz").state.values())
    change = np.concatenate([(a - b).ravel() for a, b in zip(first, initial, strict=True)])
    assert float(change.std()) == pytest.approx(5.0 * 1e-3 / SITES, rel=0.05)
    # Assert 2: every site sent weight 1 (its true count kept in the metrics)
    fit = record["rounds"][0]["fit"]["sites"]
    assert sorted(fit) == ["site-1", "site-2", "site-3"]
    assert all(m["num_train"] > 10 for m in fit.values())
    # Assert 3: the budget, per round, from the accountant
    spent = [r["privacy"]["epsilon"] for r in record["rounds"]]
    assert spent == pytest.approx([rdp_epsilon(5.0, 1.0, r, 1e-5) for r in (1, 2)])


def test_dp_sgd_spends_the_target_epsilon_by_the_last_round(sites: Path, tmp_path: Path) -> None:
    # Execute
    _, record = _run(sites, tmp_path, **{"dp": "dp-sgd", "dp-target-epsilon": 3.0})

    # Assert: every site's epsilon grows and ends at the target (the largest is reported)
    per_round = [r["privacy"]["per_site"] for r in record["rounds"]]
    assert sorted(per_round[-1]) == ["site-1", "site-2", "site-3"]
    for site, last in per_round[-1].items():
        assert per_round[0][site] < last
        assert 2.9 <= last <= 3.0
    assert record["privacy"]["epsilon"] == max(per_round[-1].values())
    assert record["privacy"]["unit"] == "example"
