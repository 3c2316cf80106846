"""Layout of provisioning kits and the safety checks both the server and the sites run."""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ProvisioningError

__all__ = [
    "CA_CERT",
    "KitFiles",
    "SERVER_CERT",
    "SERVER_KEY",
    "SERVER_TOML",
    "SITE_AUTH_KEY",
    "SITE_AUTH_PUB",
    "SITE_KEYS_DIR",
    "SITE_TOML",
    "check_private_key",
    "read_kit_toml",
    "require_file",
]

# File names inside a kit; provisioning writes them, launchers read them.
CA_CERT = "ca.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
SERVER_TOML = "server.toml"
SITE_KEYS_DIR = "site-keys"
SITE_AUTH_KEY = "auth.key"
SITE_AUTH_PUB = "auth.pub"
SITE_TOML = "site.toml"


@dataclass(frozen=True)
class KitFiles:
    """Absolute paths of the files a launcher passes to Flower."""

    root: Path
    ca_cert: Path
    private_key: Path
    settings: Path


def require_file(path: Path, what: str) -> Path:
    """Return `path` if it is a file, else raise ProvisioningError naming `what`."""
    if not path.is_file():
        raise ProvisioningError(
            f"{what} not found; re-run `medfleet provision` or copy the complete kit",
            local=f"expected at {path}",
        )
    return path


def check_private_key(path: Path) -> None:
    """Refuse a private key that others can read or write.

    Parameters
    ----------
    path : Path
        The key file.

    Raises
    ------
    ProvisioningError
        When the file is missing or its mode grants any group/other permission.
    """
    require_file(path, "private key")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ProvisioningError(
            f"private key has mode {mode:04o}; it must be readable by its owner "
            "only: run `chmod 600` on it",
            local=str(path),
        )
    if hasattr(os, "getuid") and path.stat().st_uid != os.getuid():
        raise ProvisioningError(
            "private key belongs to another user; `chown` it to the account that runs this process",
            local=str(path),
        )


def read_kit_toml(path: Path) -> dict[str, Any]:
    """Read a kit settings file, turning parse errors into ProvisioningError."""
    require_file(path, "kit settings file")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ProvisioningError(
            "kit settings file is not valid TOML: fix it or re-run `medfleet provision`",
            local=f"{path}: {err}",
        ) from None
