"""dp = client on the server: Flower's wrapper adds noise of std z*C/k; the budget is recorded."""

import json
from pathlib import Path
from unittest.mock import MagicMock

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

from server.privacy import SiteLevelDp, round_privacy, with_privacy
from server.recording import RecordingStrategy
from server.run_record import RunRecorder
from server.server_app import fit_config
from server.strategies import build_strategy
from shared.config import RunConfig
from shared.privacy import rdp_epsilon
from shared.tasks import get_task

DP = {"dp": "client", "dp-noise-multiplier": 2.0, "dp-clip-norm": 1.0, "min-sites": 3}


def _setup(tmp_path: Path, **config):
    run = RunConfig.from_mapping({"out-dir": str(tmp_path), "num-server-rounds": 4, **config})
    task = get_task(run)
    model = task.build_model()
    initial = task.get_weights(model)
    strategy = with_privacy(
        build_strategy(run, ndarrays_to_parameters(initial), fit_config(run), lambda r: {}), run
    )
    return run, task, model, initial, strategy


def _replies(initial: list[np.ndarray], sites: int) -> tuple[list, list[np.ndarray]]:
    rng = np.random.default_rng(1)
    updates = [[a + 0.01 * rng.normal(size=a.shape).astype(a.dtype) for a in initial]
               for _ in range(sites)]  # fmt: skip
    results = [
        (MagicMock(node_id=i), FitRes(Status(Code.OK, ""), ndarrays_to_parameters(u), 1,
                                      {"site": f"site-{i}"}))
        for i, u in enumerate(updates)
    ]  # fmt: skip
    mean = [np.mean(layer, axis=0) for layer in zip(*updates, strict=True)]
    return results, mean


@pytest.mark.parametrize("replied", [3, 2])
def test_the_aggregate_differs_from_the_noiseless_mean_by_z_c_over_k(
    tmp_path: Path, replied: int
) -> None:
    # Prepare: 3 sites sampled; `replied` of them answer (a dropped site is a failure)
    _, _, _, initial, strategy = _setup(tmp_path, **DP)
    assert isinstance(strategy, SiteLevelDp)
    results, mean = _replies(initial, replied)
    failures = [RuntimeError("site dropped")] * (3 - replied)

    # Execute
    parameters, _ = strategy.aggregate_fit(1, results, failures)

    # Assert: the noise over all weights has the std Flower's DP paper calls for
    assert parameters is not None
    noise = np.concatenate(
        [(a - m).ravel() for a, m in zip(parameters_to_ndarrays(parameters), mean, strict=True)]
    )
    assert noise.size > 10_000
    assert abs(float(noise.mean())) < 0.05
    assert float(noise.std()) == pytest.approx(2.0 * 1.0 / replied, rel=0.03)


def test_each_round_records_the_epsilon_spent_so_far(tmp_path: Path) -> None:
    # Prepare
    run, task, model, initial, inner = _setup(tmp_path, **DP)
    recorder = RunRecorder(tmp_path, run, task.table_metrics)
    strategy = RecordingStrategy(inner, task, model, run, recorder, tmp_path)

    # Execute: two rounds of three replies
    for rnd in (1, 2):
        results, _ = _replies(strategy.global_arrays, 3)
        strategy.aggregate_fit(rnd, results, [])

    # Assert: per round and on top of run.json, from the accountant, at the stated delta
    record = json.loads((tmp_path / "run.json").read_text())
    spent = [r["privacy"]["epsilon"] for r in record["rounds"]]
    assert spent == pytest.approx([rdp_epsilon(2.0, 1.0, r, 1e-5) for r in (1, 2)])
    assert record["privacy"]["after_round"] == 2
    assert (record["privacy"]["delta"], record["privacy"]["unit"]) == (1e-5, "site")


def test_dp_sgd_reports_the_weakest_sites_epsilon(tmp_path: Path) -> None:
    run = RunConfig.from_mapping({"dp": "dp-sgd"})
    entry = round_privacy(run, 3, {"a": {"dp_epsilon": 1.5}, "b": {"dp_epsilon": 2.25}, "c": {}})
    assert entry is not None
    assert (entry["epsilon"], entry["per_site"]) == (2.25, {"a": 1.5, "b": 2.25})
    assert round_privacy(RunConfig(), 3, {}) is None


def test_target_epsilon_sets_the_noise_for_the_whole_run(tmp_path: Path) -> None:
    _, _, _, _, strategy = _setup(tmp_path, **{**DP, "dp-target-epsilon": 8.0})
    assert isinstance(strategy, SiteLevelDp)
    assert rdp_epsilon(strategy.noise_multiplier, 1.0, 4, 1e-5) == pytest.approx(8.0, abs=0.05)
