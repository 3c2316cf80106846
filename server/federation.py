"""The coordinator's federation file: where the server is reached and which sites exist."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.address import split_address
from shared.errors import ConfigError

__all__ = ["Federation", "load_federation"]

_SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_RESERVED = {"server", "ca"}


@dataclass(frozen=True)
class Federation:
    """A parsed federation file.

    Attributes
    ----------
    address : str
        `host:port` the sites dial.
    host, port
        The two halves of `address` (IPv6 hosts without brackets).
    sans : tuple[str, ...]
        Every DNS name or IP address the server certificate covers.
    sites : tuple[str, ...]
        Site names, in file order.
    """

    address: str
    host: str
    port: int
    sans: tuple[str, ...]
    sites: tuple[str, ...]


def _parse_sites(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("[sites] names must be a non-empty list of site names")
    names = tuple(str(name) for name in raw)
    for name in names:
        if not _SITE_NAME.match(name) or name in _RESERVED:
            raise ConfigError(
                f"[sites] name {name!r} is not usable: use lower-case letters, digits and "
                "'-' (at most 63), and not 'server' or 'ca'"
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"[sites] names lists {', '.join(duplicates)} more than once")
    return names


def _parse_sans(host: str, extra: Any) -> tuple[str, ...]:
    if not isinstance(extra, list) or not all(isinstance(s, str) for s in extra):
        raise ConfigError("[server] san must be a list of DNS names or IP addresses")
    # The SuperLink's own ServerApp runner dials it on 127.0.0.1, so loopback is always in.
    sans: list[str] = []
    for name in [host, *extra, "localhost", "127.0.0.1"]:
        if name not in sans:
            sans.append(name)
    return tuple(sans)


def load_federation(path: Path) -> Federation:
    """Read and validate a federation file.

    Parameters
    ----------
    path : Path
        A TOML file with `[server] address` (and optional `san` list) and
        `[sites] names`.

    Returns
    -------
    Federation
        The validated contents.

    Raises
    ------
    ConfigError
        When the file is missing, not TOML, or a value is unusable.
    """
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"federation file {path} not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"federation file {path} is not valid TOML: {err}") from None
    server = raw.get("server")
    if not isinstance(server, dict) or "address" not in server:
        raise ConfigError('federation file needs [server] address = "host:port"')
    sites = raw.get("sites")
    if not isinstance(sites, dict):
        raise ConfigError('federation file needs [sites] names = ["site-a", ...]')
    address = str(server["address"])
    host, port = split_address(address)
    return Federation(
        address=address,
        host=host,
        port=port,
        sans=_parse_sans(host, server.get("san", [])),
        sites=_parse_sites(sites.get("names")),
    )
