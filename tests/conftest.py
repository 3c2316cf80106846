"""Fixtures shared across the test folders, and how `make test` splits the suite."""

import os
import time
from collections.abc import Iterator

import pytest
from flwr.supercore.task_identity import TaskIdentity

#: `make test` runs `pytest -n 2 --dist loadscope`: the tests in the "beside" group (real
#: federations that mostly wait on their sites and round-timeouts) run in order on one
#: worker while everything else runs in order on the other. A group keeps the tests that
#: share a package fixture (the healthy federation) together. Four workers, one per
#: federation group, were slower on 2 cores (14.9 min against 13.4); so were three (17.6).
#: Measured 2026-12-02 (715 tests, 22.3 min): this group about 20.7 min, so the series
#: task's deployment round (95 s) runs in the other group. The container test (image
#: builds and a compose federation: about 4 min with cached layers, 8 min cold) joins it.
GROUPS = {
    "tests/deployment/test_containers.py": "beside",
    "tests/deployment/test_faults.py": "beside",
    "tests/deployment/federation/": "beside",
    "tests/privacy/test_deployment_no_identifier_leaves.py": "beside",
    "tests/deployment/test_detection_deployment.py": "beside",
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


@pytest.fixture(scope="session", autouse=True)
def one_ray_per_test_process() -> Iterator[None]:
    """The simulations of one test process share one Ray instance.

    Flower's Ray backend starts Ray for every simulation and shuts it down after (about
    6 s a simulation on 2 cores, and the suite runs some 25). Here its actors are still
    stopped after each simulation, but Ray stays up for the next one. A simulation that
    left actors holding CPUs (one that died mid-run) gets a fresh Ray instead.
    MEDFLEET_TEST_RAY_PER_SIMULATION=1 turns this off.
    """
    try:
        from flwr.server.superlink.fleet.vce.backend import raybackend
    except ImportError:  # another Flower layout: every simulation starts its own Ray
        raybackend = None
    if raybackend is None or os.environ.get("MEDFLEET_TEST_RAY_PER_SIMULATION"):
        yield
        return
    backend, ray = raybackend.RayBackend, raybackend.ray
    terminate, init_ray = backend.terminate, backend.init_ray

    def stop_actors_keep_ray(self: object) -> None:
        shutdown = ray.shutdown
        ray.shutdown = lambda *args, **kwargs: None
        try:
            terminate(self)
        finally:
            ray.shutdown = shutdown

    def init_unless_up(self: object, config: object) -> None:
        if ray.is_initialized() and not _ray_idle(ray):
            ray.shutdown()
        init_ray(self, config)

    backend.terminate, backend.init_ray = stop_actors_keep_ray, init_unless_up
    try:
        yield
    finally:
        backend.terminate, backend.init_ray = terminate, init_ray
        if ray.is_initialized():
            ray.shutdown()


def _ray_idle(ray: object, wait_s: float = 5.0) -> bool:
    """True once no actor holds a CPU of the running Ray (killed actors free theirs late)."""
    deadline = time.monotonic() + wait_s
    while True:
        free = ray.available_resources().get("CPU", 0.0)  # type: ignore[attr-defined]
        if free >= ray.cluster_resources().get("CPU", 0.0):  # type: ignore[attr-defined]
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
