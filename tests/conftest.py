"""Fixtures shared across the test folders, and how `make test` splits the suite."""

import pytest
from flwr.supercore.task_identity import TaskIdentity

#: `make test` runs `pytest -n 4 --dist loadscope`, and each of these groups runs in order
#: on a worker of its own while everything else runs on the fourth. The real federations
#: mostly wait on their sites and round-timeouts (the suite keeps 2 cores about 60 % busy
#: in two halves), so four workers share the cores; a group keeps the tests that share a
#: module or package fixture (the healthy federation, the robustness sites) together.
GROUPS = {
    "tests/deployment/test_faults.py": "faults",
    "tests/deployment/federation/": "federation",
    "tests/privacy/test_deployment_no_identifier_leaves.py": "federation",
    "tests/integration/test_robustness.py": "robustness",
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
