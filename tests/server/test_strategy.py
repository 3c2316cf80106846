"""MedFleetFedAvg with mocked site replies: weighted average, NaN sites, record, checkpoint."""

import json
from pathlib import Path
from unittest.mock import MagicMock

import numpy as np
import pytest
from flwr.common import Code, EvaluateRes, FitRes, Status, ndarrays_to_parameters

from server.run_record import RunRecorder
from server.strategy import MedFleetFedAvg
from shared.config import RunConfig
from shared.tasks import get_task


def _strategy(tmp_path: Path) -> MedFleetFedAvg:
    run = RunConfig(out_dir=str(tmp_path), num_rounds=2)
    task = get_task(run)
    model = task.build_model()
    return MedFleetFedAvg(task, model, run, RunRecorder(tmp_path, run, task.table_metrics))


def _fit_res(arrays: list[np.ndarray], n: int, site: str) -> tuple[MagicMock, FitRes]:
    proxy = MagicMock(cid=site)
    res = FitRes(
        Status(Code.OK, ""), ndarrays_to_parameters(arrays), n, {"site": site, "train_loss": 0.5}
    )
    return proxy, res


def test_aggregate_fit_is_the_example_weighted_mean(tmp_path: Path) -> None:
    # Prepare
    strategy = _strategy(tmp_path)
    shapes = [a.shape for a in strategy.task.get_weights(strategy.model)]
    rng = np.random.default_rng(0)
    updates = {site: [rng.normal(size=s).astype(np.float32) for s in shapes] for site in "ab"}
    results = [_fit_res(updates["a"], 30, "a"), _fit_res(updates["b"], 10, "b")]

    # Execute
    params, metrics = strategy.aggregate_fit(1, results, [])

    # Assert
    assert params is not None
    saved = np.load(tmp_path / "checkpoints" / "round-1.npz")
    for i, (a, b) in enumerate(zip(updates["a"], updates["b"], strict=True)):
        np.testing.assert_allclose(saved[f"arr_{i}"], 0.75 * a + 0.25 * b, rtol=1e-5, atol=1e-6)
    record = json.loads((tmp_path / "run.json").read_text())
    assert set(record["rounds"][0]["fit"]["sites"]) == {"a", "b"}
    assert metrics["train_loss"] == pytest.approx(0.5)
    assert (tmp_path / "global_model.pt").is_file()


def test_a_site_sending_nan_is_excluded_not_averaged(tmp_path: Path) -> None:
    # Prepare
    strategy = _strategy(tmp_path)
    good = strategy.task.get_weights(strategy.model)
    bad = [a.copy() for a in good]
    bad[0][...] = np.nan
    failures: list = []

    # Execute
    params, _ = strategy.aggregate_fit(
        1, [_fit_res(good, 10, "a"), _fit_res(bad, 90, "b")], failures
    )

    # Assert
    saved = np.load(tmp_path / "checkpoints" / "round-1.npz")
    np.testing.assert_allclose(saved["arr_0"], good[0])
    assert len(failures) == 1
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["rounds"][0]["fit"]["failures"] == 1
    assert set(record["rounds"][0]["fit"]["sites"]) == {"a"}


def test_only_nan_updates_keep_the_model(tmp_path: Path) -> None:
    # Prepare
    strategy = _strategy(tmp_path)
    bad = [np.full_like(a, np.nan) for a in strategy.task.get_weights(strategy.model)]

    # Execute
    params, metrics = strategy.aggregate_fit(1, [_fit_res(bad, 5, "a")], [])

    # Assert
    assert params is None and metrics == {}


def test_aggregate_evaluate_pools_counts_and_prints_the_table(tmp_path: Path, capsys) -> None:
    # Prepare
    strategy = _strategy(tmp_path)
    a = {"site": "a", "loss": 0.4, "auc": 0.8, "tp": 3.0, "fp": 1.0, "tn": 5.0, "fn": 1.0}
    b = {"site": "b", "loss": 0.6, "auc": 0.6, "tp": 1.0, "fp": 1.0, "tn": 2.0, "fn": 1.0}
    results = [
        (MagicMock(cid="1"), EvaluateRes(Status(Code.OK, ""), 0.4, 10, a)),
        (MagicMock(cid="2"), EvaluateRes(Status(Code.OK, ""), 0.6, 5, b)),
    ]

    # Execute
    loss, metrics = strategy.aggregate_evaluate(1, results, [])

    # Assert
    assert loss == pytest.approx((0.4 * 10 + 0.6 * 5) / 15)
    assert metrics["accuracy"] == pytest.approx((4 + 7) / 15)
    assert metrics["auc"] == pytest.approx((0.8 * 10 + 0.6 * 5) / 15)
    out = capsys.readouterr().out
    assert "Round 1/2" in out and "overall (weighted)" in out and "site" in out
