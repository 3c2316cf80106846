"""`medfleet site health`: the SuperNode's runtime port and the server's TLS, both checked."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.daemon import SiteKit
from client.health import site_problems
from server.provision import provision
from shared.errors import ProvisioningError
from tests.deployment import harness


def _kit(root: Path, address: str) -> SiteKit:
    root.mkdir(parents=True, exist_ok=True)
    federation = harness.federation_file(root / "hospitals.toml", address, ["site-a"])
    provision(federation, root / "kits")
    return SiteKit.load(root / "kits" / "site-a")


def _listen(port: int) -> socket.socket:
    return socket.create_server(("127.0.0.1", port))


def _serve_tls(sock: socket.socket, cert: Path, key: Path) -> threading.Thread:
    """Answer one TLS handshake on `sock` with `cert`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def accept() -> None:
        conn, _ = sock.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def runtime() -> Iterator[int]:
    port = harness.free_port()
    with _listen(port):
        yield port


def test_a_stopped_site_names_both_problems(tmp_path: Path) -> None:
    # Prepare: nothing listens on the runtime port or the kit's server address
    kit = _kit(tmp_path, f"127.0.0.1:{harness.free_port()}")
    # Execute
    problems = site_problems(kit, harness.free_port(), timeout=1)
    # Assert
    assert len(problems) == 2
    assert "runtime port" in problems[0] and kit.server_address in problems[1]


def test_a_running_site_whose_server_answers_is_healthy(tmp_path: Path, runtime: int) -> None:
    # Prepare: a TLS server with the federation's server certificate on the kit's address
    port = harness.free_port()
    kit = _kit(tmp_path, f"127.0.0.1:{port}")
    server_kit = tmp_path / "kits" / "server"
    with _listen(port) as sock:
        served = _serve_tls(sock, server_kit / "server.pem", server_kit / "server.key")
        # Execute
        problems = site_problems(kit, runtime, timeout=5)
        served.join(timeout=5)
    # Assert
    assert problems == []


def test_a_server_with_another_federations_certificate_is_refused(
    tmp_path: Path, runtime: int
) -> None:
    # Prepare: the server answers with a certificate of another federation's CA
    port = harness.free_port()
    kit = _kit(tmp_path / "ours", f"127.0.0.1:{port}")
    _kit(tmp_path / "theirs", f"127.0.0.1:{port}")
    theirs = tmp_path / "theirs" / "kits" / "server"
    with _listen(port) as sock:
        served = _serve_tls(sock, theirs / "server.pem", theirs / "server.key")
        # Execute / Assert
        with pytest.raises(ProvisioningError, match="does not trust"):
            site_problems(kit, runtime, timeout=5)
        served.join(timeout=5)
