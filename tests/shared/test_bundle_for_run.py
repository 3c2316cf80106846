"""A model file scored by an evaluation-only run: the options it fixes and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shared.bundle import evaluation_run_config, load_for_run, save_bundle
from shared.config import RunConfig
from shared.errors import ConfigError
from shared.tasks import get_task

TRAINED = {"task": "classification", "image-size": 32, "seed": 7, "lr": 0.05}


def _model_file(tmp_path: Path) -> Path:
    task = get_task(RunConfig.from_mapping(TRAINED))
    return save_bundle(tmp_path / "run" / "global_model.pt", task, task.build_model())


def _evaluation_run(config: dict, **extra: object) -> RunConfig:
    return RunConfig.from_mapping({**config, **extra})


def test_the_model_file_fixes_its_task_options_and_seed_not_its_training_settings(
    tmp_path: Path,
) -> None:
    # Prepare
    path = _model_file(tmp_path)

    # Execute: a run folder names its final model
    config = evaluation_run_config(path.parent)

    # Assert
    assert config["evaluate-model"] == str(path.resolve())
    assert config["num-server-rounds"] == 0
    assert (config["task"], config["image-size"], config["seed"]) == ("classification", 32, 7)
    assert {"model", "val-fraction"} <= set(config) and "lr" not in config


def test_the_run_network_gets_the_model_files_weights(tmp_path: Path) -> None:
    # Prepare
    path = _model_file(tmp_path)
    run = _evaluation_run(evaluation_run_config(path))
    model = get_task(run).build_model()
    torch.nn.init.zeros_(next(model.parameters()))

    # Execute
    bundle = load_for_run(path, run, model)

    # Assert
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, bundle.state_dict[name]), name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image-size": 64}, r"trained with image-size = 32 \(this run: 64\)"),
        (
            {"task": "segmentation"},
            r"trained with task = 'classification' \(this run: 'segmentation'\)",
        ),
    ],
)
def test_a_run_whose_options_differ_from_the_model_files_is_refused(
    tmp_path: Path, change: dict, message: str
) -> None:
    # Prepare
    path = _model_file(tmp_path)
    run = _evaluation_run(evaluation_run_config(path), **change)

    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        load_for_run(path, run, get_task(run).build_model())


def test_a_missing_file_and_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    # Prepare: a model file whose weights lost a layer
    path = _model_file(tmp_path)
    run = _evaluation_run(evaluation_run_config(path))
    content = torch.load(path, weights_only=True)
    content["state_dict"].popitem()
    broken = tmp_path / "broken.pt"
    torch.save(content, broken)

    # Execute / Assert
    with pytest.raises(ConfigError, match="no model at the given path"):
        evaluation_run_config(tmp_path / "absent.pt")
    with pytest.raises(ConfigError, match="weights do not fit"):
        load_for_run(broken, run, get_task(run).build_model())
