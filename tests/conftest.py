"""Fixtures shared across the test folders."""

import pytest
from flwr.supercore.task_identity import TaskIdentity


@pytest.fixture
def flower_task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run, node and task identity Flower expects when a Message is built outside a run."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1, raising=False)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1, raising=False)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1, raising=False)
