"""Fixtures shared across the test folders, and how `make test` splits the suite in two."""

import pytest
from flwr.supercore.task_identity import TaskIdentity

#: `make test` runs `pytest -n 2 --dist loadscope`: these tests (real federations that
#: mostly wait on sites and round-timeouts) run in order on one worker while everything
#: else runs in order on the other (the split that balances the two halves best).
BESIDE = (
    "tests/deployment/test_faults.py",
    "tests/deployment/federation/",
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist's scope scheduling with two scopes: `BESIDE` and the rest."""
    from xdist.scheduler import LoadScopeScheduling

    class _TwoHalves(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return "beside" if nodeid.startswith(BESIDE) else "main"

    return _TwoHalves(config, log)


@pytest.fixture
def flower_task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run, node and task identity Flower expects when a Message is built outside a run."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1, raising=False)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1, raising=False)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1, raising=False)
