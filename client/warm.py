"""Warm ClientApp starts: each ClientApp task runs in a fork of the launcher, imports done.

Flower's SuperNode runs one `flwr-clientapp` process per message, and a SecAgg+ round
is five messages per site (four key-exchange and masking stages, then evaluation).
Started cold, each process spends 1.5 s importing Flower and the training ones another
3 to 5 s importing torch and MONAI, on every site, every stage. The launcher imports
those libraries once (by importing the installed tasks) and forks per task instead.

A fork must still run the approved app's code, not the installed copy the launcher
imported: the child forgets MedFleet's own modules before Flower loads the ClientApp
from the task's FAB, so only third-party libraries come warm.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Iterable

from flwr.supercore.constant import TaskType
from flwr.supercore.superexec.executor import LaunchResult, SubprocessExecutor
from flwr.supercore.superexec.executor.types import ExecutionSpec
from flwr.supercore.tls import validate_and_resolve_root_certificates
from flwr.supernode.runtime.run_clientapp import run_clientapp

__all__ = ["OWN_PACKAGES", "PRELOAD", "ForkingExecutor", "forget_modules", "preload"]

log = logging.getLogger("medfleet.site.launcher")

# MedFleet's top-level packages: a FAB carries its own copy of each.
OWN_PACKAGES = ("client", "shared", "server", "simulations")
# What a ClientApp imports when it trains; importing it pulls in torch, MONAI, pydicom.
# torch imports `torch._dynamo` (1.7 s) lazily when the first optimizer is built, and the
# profiler's hooks on the first step: each fork would pay for them again on every message.
PRELOAD = (
    "client.site_client",
    "client.data_cache",
    "shared.tasks.classification",
    "shared.tasks.segmentation",
    "shared.tasks.gan",
    "shared.tasks.series_classification",
    "shared.tasks.detection",
    "torch._dynamo",
    "torch.profiler",
    "torch.profiler._cupti_monitor",
)


def preload(modules: Iterable[str] = PRELOAD) -> float:
    """Import `modules` (a missing one is skipped: its task then starts cold); return seconds."""
    started = time.monotonic()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001  # a cold start still works
            log.warning("warm start: could not preload %s (%s); it loads per task", name, err)
    return time.monotonic() - started


def forget_modules(packages: Iterable[str] = OWN_PACKAGES) -> int:
    """Drop `packages` and their submodules from `sys.modules`; return how many."""
    roots = tuple(packages)
    names = [n for n in sys.modules if n.split(".", 1)[0] in roots]
    for name in names:
        del sys.modules[name]
    return len(names)


class ForkingExecutor(SubprocessExecutor):
    """Flower's SuperExec executor, but a ClientApp task runs in a fork of this process."""

    def __init__(self) -> None:
        self.children: set[int] = set()

    def launch(self, spec: ExecutionSpec) -> LaunchResult:
        """Fork; the child runs Flower's `run_clientapp` for the task and exits."""
        if spec.task_type is not TaskType.CLIENT_APP:
            return super().launch(spec)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover  # the child; its coverage is not collected
            os._exit(_child(spec))
        self.children.add(pid)
        return LaunchResult.accepted()

    def reconcile(self) -> None:
        """Reap ended children, so none stays a zombie."""
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)


def _child(spec: ExecutionSpec) -> int:  # pragma: no cover  # runs in the fork
    """What `flwr-clientapp` does, minus interpreter start and imports; the exit code."""
    started = time.monotonic()
    forget_modules()
    code = 0
    try:
        run_clientapp(
            runtime_api_address=spec.runtime_api_address,
            token=spec.token,
            insecure=spec.insecure,
            certificates=validate_and_resolve_root_certificates(
                spec.root_certificates_path, spec.insecure
            ),
            parent_pid=spec.parent_pid,
            runtime_dependency_install=spec.runtime_dependency_install,
        )
    except SystemExit as end:  # Flower ends the task with flwr_exit -> sys.exit(code)
        code = end.code if isinstance(end.code, int) else 1
    except BaseException as err:  # noqa: BLE001  # never return into the launcher's loop
        log.error("ClientApp task ended with %s", type(err).__name__)
        code = 1
    seconds = time.monotonic() - started
    log.info("task %d done in %.1f s (exit code %d)", spec.task_id, seconds, code)
    sys.stdout.flush()
    sys.stderr.flush()
    return code
