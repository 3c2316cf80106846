"""The ClientApp launcher's decision: Flower's ClientApp process only for approved hashes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from flwr.proto.task_pb2 import Task  # pylint: disable=E0611
from flwr.supercore.constant import TaskType
from flwr.supercore.superexec.executor import ExecutionSpec, LaunchResult

from client.approval import APPROVALS_NAME, AppBundle, ApprovalStore
from client.daemon import SiteKit
from client.isolation import SECRET_NAME, launcher_command, process_isolation
from client.launcher import ApprovalGate, ApprovingExecPlugin, refusal_reason

APPROVED = "a" * 64
OTHER = "b" * 64


class _Executor:
    """Records what Flower's executor would have started."""

    def __init__(self) -> None:
        self.specs: list[ExecutionSpec] = []

    def launch(self, spec: ExecutionSpec) -> LaunchResult:
        self.specs.append(spec)
        return LaunchResult.accepted()


class _Plugin(ApprovingExecPlugin):
    """The launcher's plugin with Flower's executor and the refusal reply recorded."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__("127.0.0.1:1", ApprovalGate(state_dir), "site-a")
        self.started = _Executor()
        self.executor = self.started
        self.refused: list[str] = []

    def _refuse(self, token: str, task: Task) -> None:
        self.refused.append(token)


@pytest.fixture
def plugin(tmp_path: Path) -> _Plugin:
    ApprovalStore(tmp_path).approve(AppBundle(hash=APPROVED, name="app"), "hash")
    return _Plugin(tmp_path)


def _task(fab_hash: str) -> Task:
    return Task(task_id=7, type=TaskType.CLIENT_APP, run_id=3, fab_hash=fab_hash)


def test_approved_app_starts_flowers_clientapp_process(plugin: _Plugin) -> None:
    # Execute
    result = plugin.launch_task("tok-1", _task(APPROVED))
    # Assert: Flower's spec for `flwr-clientapp`, with the task's token
    (spec,) = plugin.started.specs
    assert result == LaunchResult.accepted()
    assert (spec.task_type, spec.token, spec.fab_hash) == (TaskType.CLIENT_APP, "tok-1", APPROVED)
    assert spec.runtime_api_address == "127.0.0.1:1"
    assert plugin.refused == []


def test_unapproved_app_is_refused_and_nothing_started(plugin: _Plugin) -> None:
    result = plugin.launch_task("tok-2", _task(OTHER))
    assert plugin.started.specs == []
    assert plugin.refused == ["tok-2"]
    assert result.status.value == "failed" and OTHER in (result.message or "")


def test_revocation_takes_effect_for_the_next_task(plugin: _Plugin, tmp_path: Path) -> None:
    ApprovalStore(tmp_path).revoke(APPROVED)
    plugin.launch_task("tok-3", _task(APPROVED))
    assert plugin.started.specs == [] and plugin.refused == ["tok-3"]


def test_gate_refuses_everything_when_the_store_is_damaged(tmp_path: Path) -> None:
    (tmp_path / APPROVALS_NAME).write_text("[]")
    verdict = ApprovalGate(tmp_path).check(APPROVED)
    assert not verdict.allowed and "damaged" in verdict.why


def test_allow_any_app_allows_unapproved(tmp_path: Path) -> None:
    assert not ApprovalGate(tmp_path).check(OTHER).allowed
    assert ApprovalGate(tmp_path, allow_any_app=True).check(OTHER).allowed


def test_refusal_reason_names_site_and_hash_only() -> None:
    reason = refusal_reason("site-a", OTHER)
    assert reason.startswith(f"site site-a refused app {OTHER}: not approved there")
    assert "/" not in reason  # no path can reach the server through it


def test_supernode_runs_in_process_isolation_with_a_private_secret(tmp_path: Path) -> None:
    # Execute
    args = process_isolation(tmp_path)
    first = (tmp_path / SECRET_NAME).read_bytes()
    process_isolation(tmp_path)
    # Assert: Flower's own flags, a fresh 32-byte secret per start, readable by the owner only
    secret = str(tmp_path / SECRET_NAME)
    assert args == ["--isolation", "process", "--superexec-auth-secret-file", secret]
    assert len(first) == 32 and (tmp_path / SECRET_NAME).read_bytes() != first
    assert stat.S_IMODE((tmp_path / SECRET_NAME).stat().st_mode) == 0o600


def test_launcher_command_checks_unless_any_app_is_allowed(
    site_kit: SiteKit, tmp_path: Path
) -> None:
    checked = launcher_command(site_kit, tmp_path, 9200, allow_any_app=False)
    assert checked[1:3] == ["-m", "client.launcher"]
    assert checked[checked.index("--runtime-api-address") + 1] == "127.0.0.1:9200"
    assert checked[checked.index("--state-dir") + 1] == str(tmp_path)
    assert checked[checked.index("--superexec-auth-secret-file") + 1] == str(tmp_path / SECRET_NAME)
    assert "--allow-any-app" not in checked
    assert launcher_command(site_kit, tmp_path, 9200, allow_any_app=True)[-1] == "--allow-any-app"
