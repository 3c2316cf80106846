"""Fixtures shared across the test folders, and how `make test` splits the suite."""

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flwr.supercore.task_identity import TaskIdentity

#: `make test` runs `pytest -n 4 --dist loadscope`, and each group below runs in order on
#: one worker (a group keeps the tests that share a package fixture, the healthy
#: federation, together; the simulations share one Ray and its actors). Measured on 2
#: cores (2026-12-02, 788 tests): both cores stay busy the whole run, the deployed fleets
#: use about half of the CPU, and much of a fleet's CPU is its polling (the SuperLink
#: spends ~10-20 ms per request), which grows with the fleet's wall time: five workers
#: (two fleets at once beside the rest) took 21.8 min where four took 15.1.
GROUPS = {
    "tests/deployment/test_containers.py": "containers",
    "tests/deployment/test_faults.py": "faults",
    "tests/deployment/federation/": "federation",
    "tests/privacy/test_deployment_no_identifier_leaves.py": "federation",
    "tests/integration/": "simulations",
    "tests/privacy/test_simulation_no_identifier_leaves.py": "simulations",
    "tests/tasks/": "simulations",
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
    """The simulations of one test process share one Ray instance and its actors.

    Flower's Ray backend starts Ray for every simulation, builds a pool of actors (each
    imports torch, MONAI and the tasks: several seconds on 2 cores, before round 1) and
    shuts both down after; the suite runs some 30 simulations. Here Ray stays up, and a
    pool whose actors all came back idle serves the next simulation of the same
    resources (a ClientApp is built from the simulation's own `app_fn` per message, so
    an actor keeps nothing of a run but its process-wide caches, keyed by data folder).
    A simulation that left actors busy (one that died mid-run) has them stopped; if they
    still hold CPUs, the next gets a fresh Ray. MEDFLEET_TEST_RAY_PER_SIMULATION=1 turns
    this off.
    """
    try:
        from flwr.server.superlink.fleet.vce.backend import raybackend
    except ImportError:  # another Flower layout: every simulation starts its own Ray
        raybackend = None
    if raybackend is None or os.environ.get("MEDFLEET_TEST_RAY_PER_SIMULATION"):
        yield
        return
    backend, ray = raybackend.RayBackend, raybackend.ray
    build, terminate, init_ray = backend.build, backend.terminate, backend.init_ray
    pools: dict[str, Any] = {}  # an idle pool, by the resources its actors hold

    def all_idle(pool: Any) -> bool:
        return not pool._future_to_actor and len(pool.pool) == pool.num_actors

    def shutdown() -> None:
        pools.clear()
        ray.shutdown()

    def build_or_reuse(self: Any, app_fn: object) -> None:
        pool = pools.pop(self.medfleet_pool_key, None)
        if pool is None:
            build(self, app_fn)
        else:
            self.pool, self.app_fn = pool, app_fn

    def keep_idle_actors(self: Any) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        if all_idle(pool) and not pools:
            pools[self.medfleet_pool_key] = pool
        else:
            pool.terminate_all_actors()

    def init_unless_up(self: Any, config: dict[str, Any]) -> None:
        self.medfleet_pool_key = repr((config.get("client_resources"), config.get("actor")))
        for key in [key for key in pools if key != self.medfleet_pool_key]:
            pools.pop(key).terminate_all_actors()  # type: ignore[attr-defined]
        if ray.is_initialized() and not pools and not _ray_idle(ray):
            shutdown()
        init_ray(self, config)

    backend.build, backend.terminate = build_or_reuse, keep_idle_actors
    backend.init_ray = init_unless_up
    try:
        yield
    finally:
        backend.build, backend.terminate, backend.init_ray = build, terminate, init_ray
        if ray.is_initialized():
            shutdown()


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
