"""The SuperNode's local runtime port (`--runtime-port`): check it is free, spot bind failures."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable

from shared.errors import ConfigError

__all__ = ["RUNTIME_HOST", "bind_failure", "check_runtime_port", "port_taken_error"]

RUNTIME_HOST = "127.0.0.1"
# What uvicorn (the SuperNode's runtime API) and the OS print when the port is taken.
_BIND_FAILURE = re.compile(
    r"address already in use|errno 98|error while attempting to bind|"
    r"Runtime HTTP API failed to start",
    re.IGNORECASE,
)
_SUGGESTION_RANGE = 100


def _can_bind(port: int, host: str = RUNTIME_HOST) -> bool:
    """True when a listening socket could take ``host:port`` now.

    SO_REUSEADDR as uvicorn sets it, so a port a stopped daemon left in TIME_WAIT counts
    as free, while one another process listens on does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_taken_error(port: int) -> ConfigError:
    """The error for a taken runtime port, suggesting the next free one above it."""
    free = next(
        (p for p in range(port + 1, min(port + _SUGGESTION_RANGE, 65536)) if _can_bind(p)),
        None,
    )
    hint = f", e.g. --runtime-port {free}" if free is not None else ""
    return ConfigError(
        f"runtime port {port} on {RUNTIME_HOST} is already in use (another site daemon or "
        f"program listens there); give this daemon a free port with --runtime-port{hint}"
    )


def check_runtime_port(port: int) -> None:
    """Refuse a runtime port that is out of range or that another process holds.

    Raises
    ------
    ConfigError
        Naming `--runtime-port`, with a free port to use instead.
    """
    if not 1 <= port <= 65535:
        raise ConfigError(f"--runtime-port must be between 1 and 65535, got {port}")
    if not _can_bind(port):
        raise port_taken_error(port)


def bind_failure(lines: Iterable[str]) -> bool:
    """True when the SuperNode's last output lines say its runtime port could not be bound."""
    return any(_BIND_FAILURE.search(line) for line in lines)
