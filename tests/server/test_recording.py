"""RecordingStrategy with mocked site replies: weighted average, refusals, record, checkpoint."""

import json
from pathlib import Path
from unittest.mock import MagicMock

import numpy as np
import pytest
from flwr.common import (
    Code,
    EvaluateRes,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)

from server.checkpoint import load_checkpoint
from server.recording import RecordingStrategy
from server.run_record import RunRecorder
from server.server_app import fit_config
from server.strategies import build_strategy
from shared.bundle import load_bundle
from shared.config import RunConfig
from shared.errors import RoundError
from shared.tasks import get_task


def _strategy(tmp_path: Path, **config) -> RecordingStrategy:
    run = RunConfig.from_mapping({"out-dir": str(tmp_path), "num-server-rounds": 2, **config})
    task = get_task(run)
    model = task.build_model()
    initial = ndarrays_to_parameters(task.get_weights(model))
    inner = build_strategy(run, initial, fit_config(run), lambda r: {})
    recorder = RunRecorder(tmp_path, run, task.table_metrics)
    return RecordingStrategy(inner, task, model, run, recorder, tmp_path)


def _fit_res(arrays: list[np.ndarray], n: int, site: str, node: int) -> tuple[MagicMock, FitRes]:
    proxy = MagicMock(cid=site, node_id=node)
    res = FitRes(
        Status(Code.OK, ""), ndarrays_to_parameters(arrays), n, {"site": site, "train_loss": 0.5}
    )
    return proxy, res


def _updates(strategy: RecordingStrategy, sites: str, scale: float = 0.01) -> dict:
    rng = np.random.default_rng(0)
    base = strategy.global_arrays
    return {s: [a + scale * rng.normal(size=a.shape).astype(a.dtype) for a in base] for s in sites}


def test_aggregate_fit_is_the_example_weighted_mean(tmp_path: Path) -> None:
    # Prepare
    strategy = _strategy(tmp_path)
    updates = _updates(strategy, "ab")
    results = [_fit_res(updates["a"], 30, "a", 1), _fit_res(updates["b"], 10, "b", 2)]

    # Execute
    params, metrics = strategy.aggregate_fit(1, results, [])

    # Assert
    assert params is not None
    saved = load_checkpoint(tmp_path / "checkpoints" / "round-1.npz")
    assert saved.server_round == 1 and list(saved.state) == list(strategy.model.state_dict())
    for got, a, b in zip(saved.state.values(), updates["a"], updates["b"], strict=True):
        np.testing.assert_allclose(got, 0.75 * a + 0.25 * b, rtol=1e-5, atol=1e-6)
    record = json.loads((tmp_path / "run.json").read_text())
    assert set(record["rounds"][0]["fit"]["sites"]) == {"a", "b"}
    assert saved.config["strategy"] == "fedavg"
    assert metrics["train_loss"] == pytest.approx(0.5)
    bundle = load_bundle(tmp_path)
    assert bundle.task == "classification" and bundle.config["strategy"] == "fedavg"
    assert bundle.provenance["round"] == 1 and bundle.provenance["sites"] == ["a", "b"]
    for got, saved_array in zip(bundle.state_dict.values(), saved.state.values(), strict=True):
        np.testing.assert_array_equal(got.numpy(), saved_array)


def test_nan_and_wrong_shapes_are_refused_and_named(tmp_path: Path) -> None:
    # Prepare
    strategy = _strategy(tmp_path, **{"min-sites": 1})
    good = _updates(strategy, "a")["a"]
    nan = [a.copy() for a in good]
    nan[0][...] = np.nan
    short = good[:-1]
    results = [_fit_res(good, 10, "a", 1), _fit_res(nan, 90, "b", 2), _fit_res(short, 5, "c", 3)]

    # Execute
    strategy.aggregate_fit(1, results, [])

    # Assert
    saved = load_checkpoint(tmp_path / "checkpoints" / "round-1.npz")
    np.testing.assert_allclose(next(iter(saved.state.values())), good[0])
    entry = json.loads((tmp_path / "run.json").read_text())["rounds"][0]
    assert entry["refused"] == ["b", "c"] and set(entry["fit"]["sites"]) == {"a"}


def test_an_update_far_out_of_line_is_refused(tmp_path: Path) -> None:
    # Prepare
    strategy = _strategy(tmp_path)
    updates = _updates(strategy, "abc")
    base = strategy.global_arrays
    updates["c"] = [g + 1e3 * (u - g) for g, u in zip(base, updates["c"], strict=True)]
    results = [_fit_res(updates[s], 10, s, i) for i, s in enumerate("abc")]

    # Execute
    strategy.aggregate_fit(1, results, [])

    # Assert: the average of a and b only
    saved = load_checkpoint(tmp_path / "checkpoints" / "round-1.npz")
    expected = (updates["a"][0] + updates["b"][0]) / 2
    np.testing.assert_allclose(next(iter(saved.state.values())), expected, rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "run.json").read_text())["rounds"][0]["refused"] == ["c"]


def test_too_few_usable_updates_stop_the_round(tmp_path: Path) -> None:
    # Prepare
    strategy = _strategy(tmp_path, **{"min-sites": 2})
    bad = [np.full_like(a, np.nan) for a in strategy.global_arrays]
    good = _updates(strategy, "a")["a"]
    results = [_fit_res(good, 5, "a", 1), _fit_res(bad, 5, "b", 2)]

    # Execute / Assert
    with pytest.raises(RoundError, match="1 usable site updates, fewer than min-sites=2"):
        strategy.aggregate_fit(1, results, [])
    assert not (tmp_path / "checkpoints" / "round-1.npz").exists()


def test_aggregate_evaluate_pools_counts_and_prints_the_table(tmp_path: Path, capsys) -> None:
    # Prepare
    strategy = _strategy(tmp_path)
    a = {"site": "a", "loss": 0.4, "auc": 0.8, "tp": 3.0, "fp": 1.0, "tn": 5.0, "fn": 1.0}
    b = {"site": "b", "loss": 0.6, "auc": 0.6, "tp": 1.0, "fp": 1.0, "tn": 2.0, "fn": 1.0}
    results = [
        (MagicMock(cid="1", node_id=1), EvaluateRes(Status(Code.OK, ""), 0.4, 10, a)),
        (MagicMock(cid="2", node_id=2), EvaluateRes(Status(Code.OK, ""), 0.6, 5, b)),
    ]

    # Execute
    loss, metrics = strategy.aggregate_evaluate(1, results, [])

    # Assert
    assert loss == pytest.approx((0.4 * 10 + 0.6 * 5) / 15)
    assert metrics["accuracy"] == pytest.approx((4 + 7) / 15)
    assert metrics["auc"] == pytest.approx((0.8 * 10 + 0.6 * 5) / 15)
    out = capsys.readouterr().out
    assert "Round 1/2" in out and "overall (weighted)" in out and "site" in out


def test_a_flower_wrapper_inside_saves_the_model_the_wrapper_made(tmp_path: Path) -> None:
    # Prepare: Flower's server-side DP wrapper between the recording layer and FedAvg
    from flwr.server.strategy import DifferentialPrivacyServerSideFixedClipping

    plain = _strategy(tmp_path / "plain")
    noisy = _strategy(tmp_path / "dp")
    noisy.inner = DifferentialPrivacyServerSideFixedClipping(
        noisy.inner, noise_multiplier=1.0, clipping_norm=1.0, num_sampled_clients=2
    )
    updates = _updates(plain, "ab")

    # Execute
    results = [_fit_res(updates["a"], 10, "a", 1), _fit_res(updates["b"], 10, "b", 2)]
    plain.aggregate_fit(1, results, [])
    # What the wrapper's configure_fit remembers: the round's global weights.
    noisy.inner.current_round_params = [a.copy() for a in noisy.global_arrays]
    returned, _ = noisy.aggregate_fit(1, results, [])

    # Assert: the checkpoint is the noised model the next round starts from, not FedAvg's
    saved = list(load_checkpoint(tmp_path / "dp" / "checkpoints" / "round-1.npz").state.values())
    clean = list(load_checkpoint(tmp_path / "plain" / "checkpoints" / "round-1.npz").state.values())
    assert returned is not None
    for got, sent in zip(saved, parameters_to_ndarrays(returned), strict=True):
        np.testing.assert_array_equal(got, sent)
    assert not np.allclose(saved[0], clean[0], atol=1e-3)


def test_each_round_records_when_it_started_and_how_long_it_and_its_training_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a clock read at the round's start (twice), after training, after evaluation
    import server.recording as recording

    strategy = _strategy(tmp_path)
    ticks = iter([100.0, 100.0, 103.25, 105.5])
    monkeypatch.setattr(recording.time, "monotonic", lambda: next(ticks))
    monkeypatch.setattr(strategy.inner, "configure_fit", lambda *args: [])
    updates = _updates(strategy, "ab")
    evaluated = {"site": "a", "loss": 0.4, "auc": 0.8, "tp": 3.0, "fp": 1.0, "tn": 5.0, "fn": 1.0}
    # Execute
    strategy.configure_fit(1, ndarrays_to_parameters(strategy.global_arrays), MagicMock())
    strategy.aggregate_fit(
        1, [_fit_res(updates["a"], 30, "a", 1), _fit_res(updates["b"], 10, "b", 2)], []
    )
    strategy.aggregate_evaluate(
        1,
        [(MagicMock(cid="1", node_id=1), EvaluateRes(Status(Code.OK, ""), 0.4, 10, evaluated))],
        [],
    )
    # Assert
    entry = json.loads((tmp_path / "run.json").read_text())["rounds"][0]
    assert entry["seconds"] == pytest.approx(5.5)
    assert entry["fit_seconds"] == pytest.approx(3.25)
    assert entry["started"][:4].isdigit() and "T" in entry["started"]


def test_the_global_model_does_not_depend_on_the_order_the_sites_replied(tmp_path: Path) -> None:
    # Prepare: five sites' updates with weights whose float sums differ by order
    strategy_1, strategy_2 = _strategy(tmp_path / "1"), _strategy(tmp_path / "2")
    updates = _updates(strategy_1, "abcde", scale=0.3)
    counts = {"a": 7, "b": 13, "c": 29, "d": 3, "e": 11}
    replies = [_fit_res(updates[s], counts[s], s, k) for k, s in enumerate("abcde", start=1)]
    # Execute
    first, _ = strategy_1.aggregate_fit(1, replies, [])
    second, _ = strategy_2.aggregate_fit(1, replies[::-1], [])
    # Assert: bit-identical, not merely close
    assert first is not None and second is not None
    for a, b in zip(parameters_to_ndarrays(first), parameters_to_ndarrays(second), strict=True):
        assert a.tobytes() == b.tobytes()
