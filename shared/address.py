"""`host:port` addresses as written in federation files and kits."""

from __future__ import annotations

import re

from shared.errors import ConfigError

__all__ = ["split_address"]

_ADDRESS = re.compile(r"\[(?P<v6>[0-9a-fA-F:.]+)\]:(?P<p6>\d+)|(?P<h>[^:\s\[\]]+):(?P<p>\d+)")


def split_address(address: str) -> tuple[str, int]:
    """Split `host:port` (IPv6 as `[::1]:9092`) and check the port range.

    Raises
    ------
    ConfigError
        When the address has no port, or the port is outside 1-65535.
    """
    match = re.fullmatch(_ADDRESS, address)
    if match is None:
        raise ConfigError(
            f"server address must be 'host:port' (IPv6 as '[::1]:9092'), got {address!r}"
        )
    host = match["v6"] or match["h"]
    port = int(match["p6"] or match["p"])
    if not 0 < port < 65536:
        raise ConfigError(f"server address port must be 1-65535, got {port}")
    return host, port
