"""Warm ClientApp starts: a forked task forgets MedFleet's modules and ends with its own code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from flwr.supercore.constant import TaskType
from flwr.supercore.superexec.executor.types import ExecutionSpec

from client import warm


def _spec(out: Path) -> ExecutionSpec:
    return ExecutionSpec(
        task_type=TaskType.CLIENT_APP,
        runtime_api_address="127.0.0.1:1",
        token=str(out),  # carries the test's output path into the fake run_clientapp
        insecure=True,
        root_certificates_path=None,
        runtime_dependency_install=False,
        parent_pid=os.getpid(),
        suppress_output=False,
        task_id=1,
    )


def _fake_run_clientapp(**kwargs: object) -> None:
    """Stands in for Flower's: records what the child saw, then exits like flwr_exit."""
    seen = {
        "pid": os.getpid(),
        "own": sorted(n for n in sys.modules if n.split(".")[0] in warm.OWN_PACKAGES),
        "torch": "torch" in sys.modules,
        "parent_pid": kwargs["parent_pid"],
    }
    Path(str(kwargs["token"])).write_text(json.dumps(seen))
    sys.exit(3)


def _wait_exit(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    raise AssertionError(f"child {pid} did not exit")


def test_forget_modules_drops_only_the_named_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    for name in ("medfleetx", "medfleetx.sub", "medfleetx.sub.leaf", "medfleetxy"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    # Execute
    dropped = warm.forget_modules(["medfleetx"])
    # Assert
    assert dropped == 3
    assert "medfleetx.sub" not in sys.modules and "medfleetxy" in sys.modules


def test_preload_skips_a_missing_module_and_imports_the_rest() -> None:
    # Execute
    seconds = warm.preload(["json", "no_such_module_here_xyz"])
    # Assert
    assert 0 <= seconds < 5
    assert "no_such_module_here_xyz" not in sys.modules


def test_after_the_preload_a_training_step_imports_nothing_more() -> None:
    # Prepare: a fresh interpreter, as the launcher is
    code = (
        "import sys; from client import warm; warm.preload(); before = set(sys.modules)\n"
        "import torch; net = torch.nn.Conv2d(1, 2, 3)\n"
        "opt = torch.optim.Adam(net.parameters(), lr=1e-3)\n"
        "net(torch.zeros(1, 1, 8, 8)).sum().backward(); opt.step()\n"
        "print(sorted(set(sys.modules) - before))"
    )
    # Execute
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    # Assert: nothing left for each forked task to import (torch._dynamo took 1.7 s)
    assert done.stdout.strip() == "[]", done.stdout


def test_forked_task_runs_without_medfleet_modules_but_with_torch_warm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: this test process has imported client.* and shared.* (the launcher's copy)
    import torch  # noqa: F401  # the warm library the child must keep

    monkeypatch.setattr(warm, "run_clientapp", _fake_run_clientapp)
    executor = warm.ForkingExecutor()
    out = tmp_path / "seen.json"
    assert any(n.startswith("client.") for n in sys.modules)
    # Execute
    result = executor.launch(_spec(out))
    (pid,) = executor.children
    code = _wait_exit(pid)
    # Assert: Flower's exit code passes through; the child was another process that held
    # no MedFleet module (so Flower loads the FAB's copy) and still had torch imported
    assert result.status == "accepted"
    assert code == 3
    seen = json.loads(out.read_text())
    assert seen["pid"] == pid != os.getpid()
    assert seen["own"] == []
    assert seen["torch"] is True
    assert seen["parent_pid"] == os.getpid()
    assert "client.warm" in sys.modules  # the parent keeps its own


def test_reconcile_reaps_ended_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    monkeypatch.setattr(warm, "run_clientapp", _fake_run_clientapp)
    executor = warm.ForkingExecutor()
    executor.launch(_spec(tmp_path / "a.json"))
    executor.launch(_spec(tmp_path / "b.json"))
    assert len(executor.children) == 2
    # Execute
    deadline = time.monotonic() + 30
    while executor.children and time.monotonic() < deadline:
        executor.reconcile()
        time.sleep(0.05)
    # Assert: both reaped (no zombie left), both ran
    assert executor.children == set()
    assert (tmp_path / "a.json").is_file() and (tmp_path / "b.json").is_file()
