"""Cross-site evaluation end to end: a training run's site-by-model table, evaluation only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from shared.bundle import load_bundle
from shared.cli import main
from shared.config import RunConfig
from shared.cross_site import GLOBAL
from shared.tasks.base import TrainSettings
from simulations.runner import SimulationOptions, run_simulation_job
from simulations.synth import generate_sites

SITES = ("site-1", "site-2")


def _train(data: Path, out: Path) -> dict[str, Any]:
    run = RunConfig.from_mapping(
        {"num-server-rounds": 1, "min-sites": 2, "sim-data-root": str(data), "out-dir": str(out),
         "device": "cpu", "image-size": 32, "cross-site-local": True}
    )  # fmt: skip
    return run_simulation_job(SimulationOptions(run, 2, data))


def _scored_here(model_file: Path, data: Path, site: str) -> dict[str, float]:
    """The model file scored on a site's validation split in this process, not by a site."""
    task, model = load_bundle(model_file).build()
    settings = TrainSettings(1, 16, 1e-3, 42, torch.device("cpu"))
    return task.evaluate(model, task.load_site(data / site), settings).metrics


def _scores(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "num_examples_val"}


def test_training_run_table_matches_the_model_file_and_an_evaluation_only_run(
    tmp_path: Path,
) -> None:
    # Prepare
    data = tmp_path / "data"
    generate_sites(data, n_sites=2, seed=42, scale=0.2)

    # Execute: train one round; then score its model file alone, through `medfleet sim`
    trained = _train(data, tmp_path / "train")
    model_file = tmp_path / "train" / "global_model.pt"
    argv = ["sim", "--evaluate-only", str(model_file), "--data", str(data), "--sites", "2"]
    code = main([*argv, "--device", "cpu", "--out", str(tmp_path / "eval")])
    evaluated = json.loads((tmp_path / "eval" / "run.json").read_text())

    # Assert: every model x site cell; the global row is the model file's own scores
    assert trained["status"] == "completed"
    table = trained["cross_site"]
    assert table["models"] == [GLOBAL, *SITES] and table["sites"] == list(SITES)
    assert table["global_from"] == "round 1 evaluate" and table["main_metric"] == "auc"
    for model in table["models"]:
        assert set(table["scores"][model]) == set(SITES), model
    for site in SITES:
        here = _scored_here(model_file, data, site)
        assert _scores(table["scores"][GLOBAL][site]) == pytest.approx(here, rel=1e-5), site
        assert table["scores"]["site-1"][site]["loss"] != pytest.approx(here["loss"], rel=1e-3)
    # The evaluation-only run: no rounds, no new model, the same global scores
    assert code == 0 and evaluated["status"] == "completed" and evaluated["rounds"] == []
    assert evaluated["config"]["image-size"] == 32 and evaluated["config"]["num-server-rounds"] == 0
    assert evaluated["evaluated_model"]["path"] == str(model_file.resolve())
    assert not (tmp_path / "eval" / "global_model.pt").exists()
    again = evaluated["cross_site"]
    assert (again["models"], again["global_from"]) == ([GLOBAL], "cross-site pass")
    for site in SITES:
        expected = _scores(table["scores"][GLOBAL][site])
        assert _scores(again["scores"][GLOBAL][site]) == pytest.approx(expected, rel=1e-5)
    for run_dir, rows in ((tmp_path / "train", 3), (tmp_path / "eval", 1)):
        html = (run_dir / "report.html").read_text()
        section = re.search(r'<section id="cross-site">(.*?)</section>', html, re.S)
        assert section is not None and section.group(1).count("<tr") == rows + 1
