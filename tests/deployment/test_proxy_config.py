"""The generated nginx configuration: only Flower's Fleet routes are forwarded (no network)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from server import launcher, proxy
from server.provision import provision
from shared.errors import ProvisioningError
from tests.deployment import harness

# The Fleet API of Flower 1.42, as its router declares it (flwr/superlink/routers/fleet).
# Written out here so that a Flower upgrade that adds a route fails this test and the new
# route is looked at before sites (or anyone) can reach it.
FLEET_1_42 = {
    "/v1/fleet/activate-node",
    "/v1/fleet/confirm-message-received",
    "/v1/fleet/deactivate-node",
    "/v1/fleet/get-fab",
    "/v1/fleet/get-run",
    "/v1/fleet/pull-messages",
    "/v1/fleet/pull-object",
    "/v1/fleet/push-messages",
    "/v1/fleet/push-object",
    "/v1/fleet/register-node",
    "/v1/fleet/send-node-heartbeat",
    "/v1/fleet/unregister-node",
}


def _plan(state: Path, kit: Path = Path("/kit")) -> proxy.ProxyPlan:
    return proxy.ProxyPlan(
        listen_host="0.0.0.0",
        listen_port=9092,
        upstream_port=41234,
        cert=kit / "server.pem",
        key=kit / "server.key",
        ca_cert=kit / "ca.pem",
        state_dir=state,
    )


def _locations(text: str) -> dict[str, str]:
    """Exact-match location path -> its proxy_pass target."""
    found = re.findall(r"location = (\S+) \{[^}]*?\}\s*proxy_pass (\S+);", text)
    return dict(found)


def test_fleet_routes_are_flowers_and_none_of_control_or_runtime() -> None:
    # Prepare: the other routers of the same SuperLink app, read independently
    from flwr.supercore.routers.runtime.router import router as runtime
    from flwr.superlink.routers.control.router import router as control

    others = {route.path for route in [*control.routes, *runtime.routes]}
    # Execute
    routes = proxy.fleet_routes()
    # Assert
    assert set(routes) == FLEET_1_42
    assert "/v1/control/start-run" in others and "/v1/control/stop-run" in others
    assert not set(routes) & others
    assert all(methods == ("POST",) for methods in routes.values())


def test_config_forwards_exactly_the_fleet_routes(tmp_path: Path) -> None:
    # Execute
    text = proxy.render_config(_plan(tmp_path), proxy.fleet_routes())
    # Assert: one exact location per Fleet route, sent upstream under its own path
    locations = _locations(text)
    assert set(locations) == FLEET_1_42
    for path, target in locations.items():
        assert target == f"https://superlink{path}"
    assert "/v1/control" not in text and "/v1/runtime" not in text
    # Everything else is refused, and only POST reaches a Fleet route
    assert re.search(r"location / \{ return 403 ", text)
    assert text.count("limit_except POST { deny all; }") == len(FLEET_1_42)
    assert len(re.findall(r"\blocation\b", text)) == len(FLEET_1_42) + 2  # + `/`, @plain_http


def test_config_listens_publicly_with_tls_and_verifies_the_loopback_superlink(
    tmp_path: Path,
) -> None:
    # Execute
    text = proxy.render_config(_plan(tmp_path), proxy.fleet_routes())
    # Assert
    assert "listen 0.0.0.0:9092 ssl;" in text
    assert re.search(r"upstream superlink \{\s*server 127\.0\.0\.1:41234;", text)
    assert 'ssl_certificate "/kit/server.pem";' in text
    assert 'ssl_certificate_key "/kit/server.key";' in text
    assert "proxy_ssl_verify on;" in text and 'proxy_ssl_trusted_certificate "/kit/ca.pem";' in text
    assert re.findall(r"^\s*listen .*$", text, re.M) == ["        listen 0.0.0.0:9092 ssl;"]


@pytest.mark.parametrize(
    ("host", "listen"),
    [
        ("::", "[::]:9092 ssl ipv6only=off"),
        ("::1", "[::1]:9092 ssl"),
        ("[fd00::5]", "[fd00::5]:9092 ssl"),
        ("10.0.0.5", "10.0.0.5:9092 ssl"),
    ],
)
def test_listen_address_forms(tmp_path: Path, host: str, listen: str) -> None:
    plan = proxy.ProxyPlan(host, 9092, 1, Path("/c"), Path("/k"), Path("/a"), tmp_path)
    assert f"listen {listen};" in proxy.render_config(plan, {"/v1/fleet/x": ("POST",)})


def test_nginx_runs_in_foreground_and_writes_only_under_the_state_dir(tmp_path: Path) -> None:
    # Execute
    text = proxy.render_config(_plan(tmp_path / "proxy"), proxy.fleet_routes())
    # Assert
    assert text.startswith("# Generated") and "\ndaemon off;\n" in text
    written = re.findall(r"^\s*(?:pid|error_log|access_log|\w+_temp_path) \"([^\"]+)\"", text, re.M)
    assert len(written) == 8  # pid, two logs, five temporary folders
    for path in written:
        assert Path(path).is_relative_to(tmp_path / "proxy"), path
    assert "/var/" not in text and "/run/" not in text and "\nuser " not in text


@pytest.mark.parametrize("bad", ['state"dir', "state$dir", "state;dir", "state{dir"])
def test_a_path_nginx_would_misread_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ProvisioningError, match="character nginx cannot take"):
        proxy.render_config(_plan(tmp_path / bad), proxy.fleet_routes())


def test_missing_nginx_names_the_debian_package_and_the_opt_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(ProvisioningError) as err:
        proxy.nginx_executable()
    assert "apt-get install nginx" in str(err.value) and "--no-proxy" in str(err.value)


def test_server_start_without_nginx_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Prepare
    harness.federation_file(tmp_path / "f.toml", "127.0.0.1:9092", ["site-a"])
    provision(tmp_path / "f.toml", tmp_path / "kits")
    srv = launcher.ServerKit.load(tmp_path / "kits" / "server")
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    # Execute
    with pytest.raises(ProvisioningError, match="nginx is not installed"):
        launcher.start_server(srv, tmp_path / "state", "127.0.0.1", 9092)
    # Assert: refused before the SuperLink was started (it would have made its state folder)
    assert not (tmp_path / "state").exists()
