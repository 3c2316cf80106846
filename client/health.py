"""`medfleet site health`: whether a site daemon's SuperNode runs and its server answers."""

from __future__ import annotations

import socket

from client.daemon import SiteKit, check_server_certificate
from client.runtime_port import RUNTIME_HOST

__all__ = ["site_problems"]


def _listening(port: int, host: str = RUNTIME_HOST, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def site_problems(kit_: SiteKit, runtime_port: int, timeout: float = 5.0) -> list[str]:
    """What keeps the site from training now; empty when it is healthy.

    Healthy means the daemon's SuperNode is up (its runtime API on 127.0.0.1 answers) and
    the kit's server answers over TLS with a certificate the kit's CA signed for its name.

    Raises
    ------
    ProvisioningError
        When the server presents a certificate the kit does not trust.
    """
    problems = []
    if not _listening(runtime_port):
        problems.append(f"the SuperNode is not running: nothing answers on runtime port "
                        f"{runtime_port}")  # fmt: skip
    if not check_server_certificate(kit_.server_address, kit_.ca_cert, timeout):
        problems.append(f"the server {kit_.server_address} does not answer")
    return problems
