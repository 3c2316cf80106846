"""Shared fixtures of the site-side tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.daemon import SiteKit
from server.provision import provision


@pytest.fixture
def site_kit(tmp_path: Path) -> SiteKit:
    """A provisioned kit whose server (port 1 on loopback) refuses at once."""
    fed = tmp_path / "f.toml"
    fed.write_text('[server]\naddress = "127.0.0.1:1"\n[sites]\nnames = ["site-a"]\n')
    provision(fed, tmp_path / "kits")
    return SiteKit.load(tmp_path / "kits" / "site-a")
