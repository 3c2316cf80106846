"""The series task federated in Flower's simulation engine: one round, metrics in run.json."""

import json
from pathlib import Path

import pytest

from shared.config import RunConfig
from simulations.runner import SimulationOptions, run_simulation_job
from simulations.synth import generate_sites

CLASSIFICATION_METRICS = {"loss", "accuracy", "precision", "recall", "f1", "auc"}


@pytest.mark.slow
def test_one_round_of_cnn_gru_reports_series_metrics_per_site_and_overall(tmp_path: Path) -> None:
    # Prepare: two small series sites (generated here, so their series counts are known)
    data, out = tmp_path / "data", tmp_path / "out"
    sites = generate_sites(data, n_sites=2, seed=5, task="series", scale=0.2, difficulty=0.0)
    written = {s.name: json.loads((s / "site.json").read_text())["counts"] for s in sites}
    run = RunConfig.from_mapping(
        {
            "task": "series",
            "model": "cnn-gru",
            "image-size": 32,
            "batch-size": 4,
            "num-server-rounds": 1,
            "min-sites": 2,
            "sim-data-root": str(data),
            "out-dir": str(out),
            "device": "cpu",
        }
    )
    # Execute
    record = run_simulation_job(SimulationOptions(run, 2, data))
    # Assert
    assert record["status"] == "completed"
    assert json.loads((out / "run.json").read_text()) == record
    (entry,) = record["rounds"]
    for site, counts in written.items():
        fit = entry["fit"]["sites"][site]
        assert fit["data_series"] == counts["series"]
        assert fit["data_usable"] == counts["slices"]
        assert set(entry["evaluate"]["sites"][site]) >= CLASSIFICATION_METRICS
    pooled = entry["evaluate"]["aggregated"]
    assert set(pooled) >= CLASSIFICATION_METRICS
    assert pooled["tp"] + pooled["fp"] + pooled["tn"] + pooled["fn"] == sum(
        entry["evaluate"]["sites"][s]["tp"] + entry["evaluate"]["sites"][s]["fp"]
        + entry["evaluate"]["sites"][s]["tn"] + entry["evaluate"]["sites"][s]["fn"]
        for s in written
    )  # fmt: skip
    assert (out / "global_model.pt").is_file()
