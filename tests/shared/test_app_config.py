"""The Flower app config in pyproject.toml: what `flwr run` passes must build every task."""

import tomllib
from pathlib import Path

import pytest

from shared.config import RunConfig
from shared.tasks import TASKS, get_task

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def _app_config() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_builds_from_the_declared_defaults(task: str) -> None:
    # Prepare: Flower refuses --run-config keys that pyproject does not declare
    config = {**_app_config(), "task": task}

    # Execute
    built = get_task(RunConfig.from_mapping(config))

    # Assert
    assert built.name == task
    assert built.build_model() is not None


def test_run_config_keys_round_trip_through_the_declared_config() -> None:
    # Prepare
    declared = _app_config()

    # Execute
    produced = RunConfig.from_mapping(declared).to_mapping()

    # Assert: every key MedFleet writes is one Flower accepts as an override
    assert set(produced) <= set(declared)


def test_declared_config_equals_the_schema_defaults() -> None:
    # Prepare
    from shared.config import run_schema

    declared = _app_config()

    # Execute
    defaults = run_schema().defaults()

    # Assert: `flwr run` and `medfleet sim` start from the same values
    assert declared == defaults
