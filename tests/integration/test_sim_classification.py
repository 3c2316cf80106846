"""End-to-end simulations of the classification task through Flower's simulation engine."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from server.checkpoint import load_checkpoint
from shared.config import RunConfig
from shared.tasks import get_task
from shared.tasks.base import TrainSettings
from simulations.runner import SimulationOptions, run_simulation_job
from simulations.synth import generate_sites


def _run(tmp_path: Path, sites: int, rounds: int, scale: float, **extra: object) -> dict:
    data, out = tmp_path / "data", tmp_path / "out"
    run = RunConfig.from_mapping(
        {
            "num-server-rounds": rounds,
            "min-sites": sites,
            "sim-data-root": str(data),
            "out-dir": str(out),
            "device": "cpu",
            **extra,
        }
    )
    return run_simulation_job(SimulationOptions(run, sites, data, synth_scale=scale))


def _global_val_loss(tmp_path: Path, site: str, server_round: int, **extra: object) -> float:
    """Validation loss of a round's global checkpoint on a site's data, scored in the test."""
    task = get_task(RunConfig.from_mapping(dict(extra)))
    model = task.build_model()
    checkpoint = tmp_path / "out" / "checkpoints" / f"round-{server_round}.npz"
    task.set_weights(model, list(load_checkpoint(checkpoint).state.values()))
    data = task.load_site(tmp_path / "data" / site)
    settings = TrainSettings(1, 16, 1e-3, 42, torch.device("cpu"))
    return task.evaluate(model, data, settings).metrics["loss"]


def test_two_sites_two_rounds_change_weights_and_all_sites_report(tmp_path: Path) -> None:
    # Prepare: site-1 also holds what real exports hold: a truncated file and a stray one
    site_1 = generate_sites(tmp_path / "data", n_sites=2, seed=42, scale=0.2)[0]
    good = next(site_1.rglob("*.dcm")).read_bytes()
    (site_1 / "broken.dcm").write_bytes(good[: len(good) // 2])
    (site_1 / "notes.bin").write_bytes(b"not an image")

    # Execute
    record = _run(tmp_path, sites=2, rounds=2, scale=0.2)

    # Assert
    assert record["status"] == "completed"
    initial = get_task(RunConfig()).get_weights(get_task(RunConfig()).build_model())
    ckpt = [
        list(load_checkpoint(tmp_path / "out" / "checkpoints" / f"round-{r}.npz").state.values())
        for r in (1, 2)
    ]
    assert not np.allclose(ckpt[0][0], initial[0])
    assert not np.allclose(ckpt[1][0], ckpt[0][0])
    for entry in record["rounds"]:
        assert set(entry["fit"]["sites"]) == {"site-1", "site-2"}
        assert set(entry["evaluate"]["sites"]) == {"site-1", "site-2"}
        for metrics in entry["evaluate"]["sites"].values():
            assert {"accuracy", "recall", "f1", "loss"} <= set(metrics)
    data_report = record["rounds"][0]["fit"]["sites"]["site-1"]
    assert data_report["data_skipped"] == 2
    assert data_report["data_skipped_truncated"] == 1
    on_disk = json.loads((tmp_path / "out" / "run.json").read_text())
    assert on_disk == record
    assert (tmp_path / "out" / "global_model.pt").is_file()
    # FedAvg: a site validates exactly the round's global model
    reported = record["rounds"][1]["evaluate"]["sites"]["site-2"]["loss"]
    assert reported == pytest.approx(_global_val_loss(tmp_path, "site-2", 2), rel=1e-5)
    _assert_report(tmp_path / "out", record)


def _assert_report(out: Path, record: dict) -> None:
    """The run's report.html: the ROC and confusion plots, the last round's counts, sites."""
    html = (out / "report.html").read_text()
    found = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', html, flags=re.S))
    png = 'src="data:image/png;base64,'
    for section in ("losses", "scores", "confusion", "roc"):
        assert found[section].count(png) == 1, section
    pooled = record["rounds"][-1]["evaluate"]["aggregated"]
    counts = "".join(f"<td>{int(pooled[k])}</td>" for k in ("tp", "fp", "tn", "fn"))
    assert f"<td>overall</td>{counts}" in found["confusion"]
    assert "area" in found["roc"]  # drawn from the sites' ROC counts, not the 0.5 point only
    for site in ("site-1", "site-2"):
        assert found["per-site"].count(f"<td>{site}</td>") == 2


def test_fedbn_sites_validate_with_their_own_normalisation_layers(tmp_path: Path) -> None:
    # Prepare: ResNet-18's batch norm statistics follow each site's scanner
    resnet = {"model": "resnet18", "image-size": 32}
    # Execute
    record = _run(tmp_path, sites=2, rounds=2, scale=0.2, strategy="fedbn", **resnet)

    # Assert: each site scored the global weights under its own normalisation layers
    # (kept in Flower's node state between rounds), not the averaged ones it was sent;
    # under FedAvg the two agree to 1e-5 (test above).
    assert record["status"] == "completed"
    for site in ("site-1", "site-2"):
        reported = record["rounds"][1]["evaluate"]["sites"][site]["loss"]
        assert reported != pytest.approx(_global_val_loss(tmp_path, site, 2, **resnet), rel=2e-3)


def test_scaffold_control_variate_is_the_sites_mean_drift(tmp_path: Path) -> None:
    # Prepare: one batch per epoch at every site, so each site takes K = 1 step a round
    # and SCAFFOLD's round-1 control variate must be (x0 - x1) / lr (option II, c = 0)
    options = {"strategy": "scaffold", "batch-size": 512}
    # Execute
    record = _run(tmp_path, sites=2, rounds=2, scale=0.2, **options)
    # Assert
    assert record["status"] == "completed"
    task = get_task(RunConfig())
    model = task.build_model()
    x0 = task.get_weights(model)
    first, second = (load_checkpoint(tmp_path / "out" / "checkpoints" / f"round-{r}.npz")
                     for r in (1, 2))  # fmt: skip
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    c1 = first.strategy_state["control_variate"]
    assert len(c1) == len(x0) == len(first.state)
    for (name, x1), a0, c in zip(first.state.items(), x0, c1, strict=True):
        if name in trainable:
            expected = (a0.astype(np.float64) - x1) / 1e-3
            np.testing.assert_allclose(c, expected, rtol=1e-3, atol=1e-2, err_msg=name)
        else:  # batch-norm statistics and counters are not corrected
            assert not np.any(c), name
    assert any(np.abs(c).max() > 0.1 for c in c1)
    c2 = second.strategy_state["control_variate"]
    assert not all(np.allclose(a, b) for a, b in zip(c1, c2, strict=True))
