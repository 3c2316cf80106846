"""Fixtures shared across the test folders, and how `make test` splits the suite."""

import pytest
from flwr.supercore.task_identity import TaskIdentity

#: `make test` runs `pytest -n 2 --dist loadscope`: the tests in the "beside" group (real
#: federations that mostly wait on their sites and round-timeouts) run in order on one
#: worker while everything else runs in order on the other. A group keeps the tests that
#: share a package fixture (the healthy federation) together. Four workers, one per
#: federation group, were slower on 2 cores (14.9 min against 13.4).
GROUPS = {
    "tests/deployment/test_faults.py": "beside",
    "tests/deployment/federation/": "beside",
}


def worker_group(nodeid: str) -> str:
    """The worker group of a test: one of `GROUPS`, else ``main``."""
    return next((group for prefix, group in GROUPS.items() if nodeid.startswith(prefix)), "main")


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist's scope scheduling with the scopes of `worker_group`."""
    from xdist.scheduler import LoadScopeScheduling

    class _Groups(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return _Groups(config, log)


@pytest.fixture
def flower_task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run, node and task identity Flower expects when a Message is built outside a run."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1, raising=False)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1, raising=False)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1, raising=False)
