"""The site's ClientApp launcher: starts Flower's ClientApp process only for approved apps.

It takes the place of `flower-superexec` next to a SuperNode run with `--isolation
process`: it claims each ClientApp task from the SuperNode's runtime API, reads the FAB
hash of the task's run and starts `flwr-clientapp` (with Flower's own plugin and
executor) only when the site admin approved that hash. Any other task is answered with
an error reply naming the hash, without installing or importing any of the app's code.
The check holds because the SuperNode stores FABs by content hash (it refuses a FAB
whose bytes do not hash to the run's `fab_hash`), and `flwr-clientapp` loads the FAB
stored under the task's hash.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flwr.app import Error, Message
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
from flwr.proto.task_pb2 import Task  # pylint: disable=E0611
from flwr.supercore.app_utils import start_parent_process_monitor
from flwr.supercore.auth.superexec_secret import load_superexec_auth_secret
from flwr.supercore.constant import TaskType
from flwr.supercore.interceptors import (
    RuntimeTokenHttpInterceptor,
    RuntimeVersionHttpInterceptor,
    SuperExecAuthHttpInterceptor,
)
from flwr.supercore.protobuf.client import ProtobufClientInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supercore.superexec.executor import LaunchResult, SubprocessExecutor
from flwr.supercore.superexec.plugin import AutoExecPlugin
from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

from client.approval import AppBundle, ApprovalStore, fab_hash
from client.isolation import CLIENTAPP_STARTS
from client.warm import ForkingExecutor, preload
from shared.errors import ConfigError

__all__ = ["ApprovalGate", "ApprovingExecPlugin", "Verdict", "main", "refusal_reason"]

log = logging.getLogger("medfleet.site.launcher")

# What Flower's SuperExec signs when the SuperNode holds an auth secret (run_superexec.py).
_AUTH_METHODS = frozenset({"/flwr.proto.Runtime/AcquireTask"})
_POLL_S = 0.2


@dataclass(frozen=True)
class Verdict:
    """Whether a task's app may run here, and the words for the log."""

    allowed: bool
    why: str


class ApprovalGate:
    """Decide per task from the approval store, read afresh each time (approvals are live)."""

    def __init__(self, state_dir: Path, allow_any_app: bool = False) -> None:
        self.store = ApprovalStore(state_dir)
        self.allow_any_app = allow_any_app

    def check(self, hash_: str) -> Verdict:
        """Allowed when approved (or with --allow-any-app); a damaged store allows nothing."""
        if self.allow_any_app:
            return Verdict(True, "any app allowed (--allow-any-app)")
        try:
            approved = self.store.apps().get(hash_)
        except ConfigError as err:
            return Verdict(False, str(err))
        if approved is None:
            return Verdict(False, "not approved at this site")
        return Verdict(True, f"approved {approved.approved_at} by {approved.approved_by}")


def refusal_reason(site: str, hash_: str) -> str:
    """The error text the server receives: the site's name and the app's hash, nothing else."""
    return (
        f"site {site} refused app {hash_}: not approved there; the site's admin approves "
        "an app with `medfleet site approve APP` after checking it"
    )


class ApprovingExecPlugin(AutoExecPlugin):
    """Flower's SuperExec plugin for ClientApp tasks, launching only approved apps."""

    supported_task_types = frozenset({TaskType.CLIENT_APP})

    def __init__(
        self,
        runtime_api_address: str,
        gate: ApprovalGate,
        site: str,
        executor: SubprocessExecutor | None = None,
    ) -> None:
        executor = executor or SubprocessExecutor()
        super().__init__(runtime_api_address, True, None, executor=executor)
        self.gate = gate
        self.site = site

    def launch_task(self, token: str, task: Task) -> LaunchResult:
        """Start `flwr-clientapp` for an approved app; answer any other with an error."""
        verdict = self.gate.check(task.fab_hash)
        if verdict.allowed:
            log.info("run %d: app %s %s: starting", task.run_id, task.fab_hash, verdict.why)
            return super().launch_task(token, task)
        log.error(
            "run %d: REFUSED app %s: %s; approve it with `medfleet site approve` only after "
            "checking it", task.run_id, task.fab_hash, verdict.why,
        )  # fmt: skip
        self._refuse(token, task)
        return LaunchResult.failed(f"app {task.fab_hash} is not approved")

    def _refuse(self, token: str, task: Task) -> None:
        """Reply to the task's message with an error, as a failed ClientApp would."""
        reason = refusal_reason(self.site, task.fab_hash)
        client = _runtime_client(
            self.runtime_api_address, [RuntimeTokenHttpInterceptor(token)], "flwr-clientapp"
        )
        try:
            message, context, _, fab = pull_task_input(client)
            bundle = AppBundle.from_fab(fab.content)
            if fab_hash(fab.content) != task.fab_hash:  # Flower's store forbids this
                log.error("run %d: FAB content does not match hash %s", task.run_id, task.fab_hash)
            log.error("run %d: refused app is %s (%d files)", task.run_id, bundle.label,
                      len(bundle.files))  # fmt: skip
            push_message(client, Message(Error(ErrorCode.INVALID_FAB, reason), reply_to=message),
                         context)  # fmt: skip
            push_task_output(client, context, SubStatus.FAILED, reason)
        except Exception as err:  # noqa: BLE001  # the launcher must keep serving
            log.error("run %d: could not send the refusal: %s", task.run_id, err)
        finally:
            client.close()


def _runtime_client(
    address: str, interceptors: Sequence[ProtobufClientInterceptor], component: str
) -> RuntimeHttpClient:
    return RuntimeHttpClient.from_server_address(
        server_address=address,
        insecure=True,
        root_certificates=None,
        interceptors=[RuntimeVersionHttpInterceptor(component_name=component), *interceptors],
        retry_invoker=make_simple_http_retry_invoker(),
    )


def serve(runtime_api_address: str, plugin: ApprovingExecPlugin, secret: bytes | None) -> None:
    """Claim ClientApp tasks from the SuperNode until stopped (SuperExec's loop)."""
    auth: list[ProtobufClientInterceptor] = []
    if secret is not None:
        auth.append(
            SuperExecAuthHttpInterceptor(master_secret=secret, protected_methods=_AUTH_METHODS)
        )
    client = _runtime_client(runtime_api_address, auth, "SuperExec")
    request = AcquireTaskRequest(supported_task_types=sorted(plugin.supported_task_types))
    try:
        while True:
            reply = client.AcquireTask(request)
            if reply.HasField("task") and reply.token:
                plugin.launch_task(reply.token, reply.task)
            plugin.executor.reconcile()
            time.sleep(_POLL_S)
    finally:
        client.close()


def _executor(start: str) -> SubprocessExecutor:
    """`fork`: warm starts (client.warm); `spawn`: a fresh `flwr-clientapp` per task."""
    if start == "spawn":
        return SubprocessExecutor()
    log.info("warm ClientApp starts: imported torch and MONAI in %.1f s", preload())
    return ForkingExecutor()


def main(argv: list[str] | None = None) -> int:
    """`python -m client.launcher`: started by the site daemon, one per SuperNode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--superexec-auth-secret-file", default=None)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--allow-any-app", action="store_true")
    parser.add_argument("--start", choices=CLIENTAPP_STARTS, default=CLIENTAPP_STARTS[0])
    args = parser.parse_args(argv)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    logging.getLogger("flwr").propagate = False
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per poll otherwise
    if args.parent_pid is not None:
        start_parent_process_monitor(args.parent_pid)  # SIGINT when the SuperNode is gone
    from shared.object_pull import quicker_object_pulls

    quicker_object_pulls()  # the forked ClientApps pull their messages' arrays sooner
    gate = ApprovalGate(args.state_dir, args.allow_any_app)
    plugin = ApprovingExecPlugin(args.runtime_api_address, gate, args.site, _executor(args.start))
    try:
        secret = load_superexec_auth_secret(args.superexec_auth_secret_file)
        serve(args.runtime_api_address, plugin, secret)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
