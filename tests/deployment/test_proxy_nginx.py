"""The real nginx with the generated configuration, before a stub TLS upstream on loopback.

Fast (about a second): proves what the proxy lets through, request by request, including
paths written to slip past a prefix match. The full federation behind it is
federation/test_access.py.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from server import launcher, proxy
from server.provision import provision
from shared.errors import ProvisioningError
from shared.process import stop
from tests.deployment import harness
from tests.deployment.test_proxy_config import FLEET_1_42

REFUSED = [
    "/v1/control/start-run",
    "/v1/control/stop-run",
    "/v1/control/list-runs",
    "/v1/control/stream-logs",
    "/v1/runtime/pull-messages",
    "/v1/runtime/push-messages",
    "/docs",
    "/openapi.json",
    "/health",
    "/",
    "/v1/fleet/",
    "/v1/fleet/get-run/",
    "/v1/fleetx/get-run",
    "/V1/CONTROL/START-RUN",
    "//v1/control/start-run",
    "/v1/fleet/../control/start-run",
    "/v1/fleet/%2e%2e/control/start-run",
    "/v1/fleet/..%2fcontrol/stop-run",
    "/v1/fleet/get-run/../../control/list-runs",
    "/v1/fleet/get-run%2f..%2f..%2fcontrol/start-run",
]


class _Recorder(BaseHTTPRequestHandler):
    """Answers 200 to anything and records the request line the upstream received."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, int]]

    def _answer(self) -> None:
        size = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(size)
        type(self).seen.append((self.command, self.path, len(body)))
        reply = b"upstream"
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Front:
    port: int
    ca: Path
    seen: list[tuple[str, str, int]]
    nginx: psutil.Process
    plan: proxy.ProxyPlan

    def request(self, method: str, path: str, body: bytes = b"x") -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.ca))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"content-type": "application/x"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def _nginx_or_skip() -> str:
    try:
        return proxy.nginx_executable()
    except ProvisioningError:
        if os.environ.get("CI"):
            pytest.fail("nginx is required in CI (.ci/system-deps.sh installs it)")
        pytest.skip("nginx is not installed (apt-get install nginx)")


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    nginx = _nginx_or_skip()
    root = tmp_path_factory.mktemp("proxy")
    harness.federation_file(root / "f.toml", "127.0.0.1:9092", ["site-a"])
    provision(root / "f.toml", root / "kits")
    srv = launcher.ServerKit.load(root / "kits" / "server")
    # A TLS upstream with the server's own certificate, as the loopback SuperLink has
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(srv.cert, srv.key)
    upstream.socket = context.wrap_socket(upstream.socket, server_side=True)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    port = harness.free_port()
    plan = proxy.ProxyPlan("127.0.0.1", port, upstream.server_address[1], srv.cert, srv.key,
                           srv.ca_cert, root / "proxy")  # fmt: skip
    plan.state_dir.mkdir()
    proc = proxy.start_proxy(plan, dict(os.environ), nginx)
    try:
        launcher.wait_until_serving(port, srv.ca_cert, 30, proc=proc, what="nginx")
        yield Front(port, srv.ca_cert, _Recorder.seen, psutil.Process(proc.pid), plan)
    finally:
        stop(proc)
        upstream.shutdown()
        upstream.server_close()


@pytest.mark.parametrize("path", sorted(FLEET_1_42))
def test_fleet_route_reaches_the_superlink_under_its_own_path(front: Front, path: str) -> None:
    # Execute
    status, body = front.request("POST", path)
    # Assert
    assert (status, body) == (200, b"upstream")
    assert front.seen[-1] == ("POST", path, 1)


@pytest.mark.parametrize("path", REFUSED)
def test_everything_else_is_refused_before_the_superlink(front: Front, path: str) -> None:
    # Prepare
    before = len(front.seen)
    # Execute
    status, body = front.request("POST", path)
    # Assert
    assert status == 403, body
    assert proxy.REFUSAL.encode() in body
    assert len(front.seen) == before


def test_fleet_route_with_another_method_is_refused(front: Front) -> None:
    before = len(front.seen)
    assert front.request("GET", "/v1/fleet/get-run")[0] == 403
    assert len(front.seen) == before


def test_a_path_that_resolves_to_a_fleet_route_is_sent_in_canonical_form(front: Front) -> None:
    # Execute: nginx resolves the dot segment before matching
    status, _ = front.request("POST", "/v1/control/../fleet/get-run")
    # Assert: the SuperLink never sees the path as written
    assert status == 200
    assert front.seen[-1] == ("POST", "/v1/fleet/get-run", 1)


def test_a_large_update_passes_whole(front: Front) -> None:
    body = os.urandom(24 * 2**20)  # 24 MiB: beyond any buffer, streamed through
    assert front.request("POST", "/v1/fleet/push-object", body)[0] == 200
    assert front.seen[-1] == ("POST", "/v1/fleet/push-object", len(body))
    # The access log has each request's size (status, bytes sent, bytes received, seconds)
    logged = re.findall(
        r'"POST /v1/fleet/push-object HTTP/1.1" 200 \d+ (\d+) ', front.plan.access_log.read_text()
    )
    assert logged and len(body) < int(logged[-1]) < len(body) + 4096


def test_plain_http_is_closed_without_an_answer(front: Front) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    # nginx closes the connection (FIN), or resets it when our body is still unread (RST)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        conn.request("POST", "/v1/fleet/get-run", body=b"x")
        conn.getresponse()
    conn.close()


def test_nginx_keeps_its_pid_logs_and_config_in_its_state_dir(front: Front) -> None:
    # Prepare
    workers = front.nginx.children()
    written = {p.name for p in front.plan.state_dir.iterdir()}
    # Assert: its pid is the process we started; logs and config are in its folder
    assert workers and front.plan.pid_file.read_text().strip() == str(front.nginx.pid)
    assert {"nginx.conf", "nginx.pid", "error.log", "access.log", "nginx.log"} <= written
    assert '"POST /v1/control/start-run HTTP/1.1" 403' in front.plan.access_log.read_text()


def test_stop_ends_the_master_and_its_workers(front: Front, tmp_path: Path) -> None:
    # Prepare: a second proxy of the same kind
    plan = proxy.ProxyPlan("127.0.0.1", harness.free_port(), 1, front.plan.cert, front.plan.key,
                           front.ca, tmp_path)  # fmt: skip
    proc = proxy.start_proxy(plan, dict(os.environ))
    launcher.wait_until_serving(plan.listen_port, front.ca, 30, proc=proc, what="nginx")
    tree = harness.process_tree(proc.pid)
    # Execute
    stop(proc)
    # Assert
    assert len(tree) >= 2  # master + worker
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    assert not plan.pid_file.exists()  # nginx shut down cleanly (SIGTERM), not killed


def test_a_taken_public_port_is_a_clear_error(front: Front, tmp_path: Path) -> None:
    # Prepare: something else already listens on the public port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        plan = proxy.ProxyPlan("127.0.0.1", port, 1, front.plan.cert, front.plan.key, front.ca,
                               tmp_path)  # fmt: skip
        # Execute
        proc = proxy.start_proxy(plan, dict(os.environ))
        try:
            with pytest.raises(ProvisioningError, match="nginx exited with code 1"):
                launcher.wait_until_serving(port, front.ca, 30, proc=proc, what="nginx")
        finally:
            stop(proc)
    # Assert: nginx said why
    assert "Address already in use" in plan.error_log.read_text()
