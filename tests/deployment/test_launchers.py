"""Command lines and environments of the SuperLink and SuperNode launchers (no network)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from client.daemon import SiteKit, check_server_certificate, supernode_command
from server.launcher import ServerKit, superlink_command, write_connection
from server.provision import provision
from server.submit import run_config_args
from shared.errors import ConfigError, ProvisioningError
from shared.process import flower_env


@pytest.fixture
def kits(tmp_path: Path) -> Path:
    fed = tmp_path / "f.toml"
    fed.write_text('[server]\naddress = "fl.example.org:9092"\n[sites]\nnames = ["site-a"]\n')
    provision(fed, tmp_path / "kits")
    return tmp_path / "kits"


def test_superlink_runs_with_tls_auth_state_and_no_installs(kits: Path, tmp_path: Path) -> None:
    # Prepare
    srv = ServerKit.load(kits / "server")
    # Execute
    cmd = superlink_command(srv, tmp_path / "state", "0.0.0.0", srv.port)
    # Assert: Flower's SuperLink through server.superlink (its longer database wait)
    assert cmd[:3] == [sys.executable, "-m", "server.superlink"]
    for flag in ("--enable-supernode-auth", "--disable-runtime-dependency-installation"):
        assert flag in cmd
    assert "--insecure" not in cmd
    assert cmd[cmd.index("--ssl-keyfile") + 1] == str(srv.key)
    assert cmd[cmd.index("--database") + 1].endswith("superlink.db")
    assert srv.site_keys == {"site-a": kits / "server" / "site-keys" / "site-a.pub"}


def test_supernode_uses_kit_ca_and_key_and_requires_secagg(kits: Path, tmp_path: Path) -> None:
    # Prepare
    site = SiteKit.load(kits / "site-a")
    # Execute
    cmd = supernode_command(site, tmp_path / "dicom dir", "cpu", 9200, {"cache-dir": "/c"})
    # Assert
    assert "--insecure" not in cmd
    assert cmd[cmd.index("--superlink") + 1] == "fl.example.org:9092"
    assert cmd[cmd.index("--root-certificates") + 1] == str(kits / "site-a" / "ca.pem")
    assert cmd[cmd.index("--auth-supernode-private-key") + 1] == str(site.auth_key)
    node_config = cmd[cmd.index("--node-config") + 1]
    assert f'data-dir="{tmp_path / "dicom dir"}"' in node_config
    assert 'site-name="site-a"' in node_config and "require-secagg=true" in node_config
    assert 'cache-dir="/c"' in node_config


def test_flower_env_turns_telemetry_off(tmp_path: Path) -> None:
    env = flower_env(tmp_path)
    assert env["FLWR_HOME"] == str(tmp_path)
    assert env["FLWR_TELEMETRY_ENABLED"] == "0" and env["FLWR_DISABLE_UPDATE_CHECK"] == "1"


def test_connection_file_trusts_the_kit_ca(kits: Path, tmp_path: Path) -> None:
    write_connection(tmp_path, kits / "server" / "ca.pem", 9092)
    text = (tmp_path / "config.toml").read_text()
    assert 'address = "127.0.0.1:9092"' in text and "insecure" not in text
    assert str(kits / "server" / "ca.pem") in text


def test_run_config_values_are_toml_literals() -> None:
    args = run_config_args({"task": "classification", "secagg": True, "num-server-rounds": 2})
    assert args == [
        "--run-config", 'task="classification"',
        "--run-config", "secagg=true",
        "--run-config", "num-server-rounds=2",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="double quotes"):
        run_config_args({"out-dir": 'a"b'})


def test_unreachable_server_is_not_an_error(kits: Path) -> None:
    # Port 1 on loopback refuses at once: the daemon then waits for the server.
    assert check_server_certificate("127.0.0.1:1", kits / "site-a" / "ca.pem", timeout=2) is False


def test_kit_missing_pieces_are_named(kits: Path) -> None:
    (kits / "site-a" / "ca.pem").unlink()
    with pytest.raises(ProvisioningError, match="CA certificate not found"):
        SiteKit.load(kits / "site-a")
    (kits / "server" / "server.toml").unlink()
    with pytest.raises(ProvisioningError, match="kit settings file not found"):
        ServerKit.load(kits / "server")
