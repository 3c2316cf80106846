"""Run the federation's SuperLink from a server kit: TLS, site authentication, persistent state.

In deployment the SuperLink listens on 127.0.0.1 only and an nginx proxy on the public
address forwards the Fleet API to it (`server/proxy.py`): the Control API, which submits,
stops and lists runs, is reachable from the server host alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.proxy import ProxyPlan, nginx_executable, start_proxy
from shared import kit
from shared.errors import ProvisioningError
from shared.process import flower_env, flower_executable, spawn, stop

__all__ = [
    "CONNECTION",
    "RunningServer",
    "ServerKit",
    "SiteStatus",
    "flwr_cli",
    "free_loopback_port",
    "register_sites",
    "start_server",
    "start_superlink",
    "superlink_command",
    "wait_until_serving",
    "write_connection",
]

log = logging.getLogger("medfleet.server.launcher")

# Name of the SuperLink connection in $FLWR_HOME/config.toml used by `flwr` commands.
CONNECTION = "medfleet"
#: How often the SuperLink's SuperExec asks it for a ServerApp to start (Flower: 1 s). It
#: starts one per run, so the sites' quicker 0.2 s (`shared.process`) would only add
#: five requests a second, each some 10 ms of the SuperLink's CPU, to a server at rest.
SERVERAPP_POLL_SECONDS = "1"


@dataclass(frozen=True)
class ServerKit:
    """A validated server kit (see `medfleet provision`)."""

    root: Path
    ca_cert: Path
    cert: Path
    key: Path
    address: str
    port: int
    site_keys: dict[str, Path]

    @classmethod
    def load(cls, root: Path) -> ServerKit:
        """Read `server.toml` and check every file, refusing an unsafe private key."""
        root = root.resolve()
        settings = kit.read_kit_toml(root / kit.SERVER_TOML)
        key = root / kit.SERVER_KEY
        kit.check_private_key(key)
        try:
            address, port = str(settings["server"]["address"]), int(settings["server"]["port"])
            sites = {str(n): root / str(p) for n, p in settings.get("sites", {}).items()}
        except (KeyError, TypeError, ValueError):
            raise ProvisioningError(
                f"{root / kit.SERVER_TOML} lacks [server] address/port"
            ) from None
        if not sites:
            raise ProvisioningError(f"{root / kit.SERVER_TOML} lists no sites; re-run provision")
        for name, path in sites.items():
            kit.require_file(path, f"public key of site '{name}'")
        return cls(
            root=root,
            ca_cert=kit.require_file(root / kit.CA_CERT, "CA certificate"),
            cert=kit.require_file(root / kit.SERVER_CERT, "server certificate"),
            key=key,
            address=address,
            port=port,
            site_keys=sites,
        )


def superlink_command(srv: ServerKit, state_dir: Path, host: str, port: int) -> list[str]:
    """Flower's SuperLink command line: TLS, node auth, state on disk, no uv installs.

    Started through `server.superlink` (Flower's `flower-superlink` with a longer wait for
    its locked state database).
    """
    return [
        sys.executable, "-m", "server.superlink",
        "--ssl-ca-certfile", str(srv.ca_cert),
        "--ssl-certfile", str(srv.cert),
        "--ssl-keyfile", str(srv.key),
        "--enable-supernode-auth",
        "--database", str(state_dir / "superlink.db"),
        "--disable-runtime-dependency-installation",
        "--host", host,
        "--port", str(port),
    ]  # fmt: skip


def write_connection(flwr_home: Path, ca_cert: Path, port: int) -> None:
    """Point the `flwr` CLI's connection `medfleet` at the local SuperLink, over TLS."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    (flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f"[superlink.{CONNECTION}]\n"
        f'address = "127.0.0.1:{port}"\n'
        f'root-certificates = "{ca_cert}"\n'
    )


def start_superlink(
    srv: ServerKit, state_dir: Path, host: str = "0.0.0.0", port: int | None = None
) -> subprocess.Popen[bytes]:
    """Start the SuperLink; its log goes to `<state_dir>/superlink.log`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or srv.port
    flwr_home = state_dir / "flwr-home"
    write_connection(flwr_home, srv.ca_cert, port)
    command = superlink_command(srv, state_dir, host, port)
    log.info("starting the SuperLink on %s:%d (TLS, site authentication)", host, port)
    env = flower_env(flwr_home)
    if "FLWR_SUPEREXEC_TASK_POLL_INTERVAL" not in os.environ:
        env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = SERVERAPP_POLL_SECONDS
    return spawn(command, env, state_dir / "superlink.log")


def wait_until_serving(
    port: int,
    ca_cert: Path,
    timeout: float = 60.0,
    *,
    host: str = "127.0.0.1",
    proc: subprocess.Popen[bytes] | None = None,
    what: str = "the SuperLink",
    log_name: str = "superlink.log",
) -> None:
    """Block until `what` completes a TLS handshake on `host`:`port` (CA-verified).

    Gives up early when `proc` (the process that should answer) has exited.
    """
    context = ssl.create_default_context(cafile=str(ca_cert))
    # The kit's certificate names the public address and loopback, not every interface.
    context.check_hostname = host in ("127.0.0.1", "localhost")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with (
                socket.create_connection((host, port), timeout=2) as sock,
                context.wrap_socket(sock, server_hostname=host),
            ):
                return
        except OSError as err:
            code = proc.poll() if proc is not None else None
            if code is None and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            why = f"did not answer on port {port} within {timeout:g} s ({err})"
            raise ProvisioningError(
                f"{what} {why if code is None else f'exited with code {code}'}; "
                f"see {log_name} in the state folder"
            ) from None


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (the loopback SuperLink's, behind the proxy)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """The processes of `medfleet server start`: the SuperLink and the proxy before it."""

    superlink: subprocess.Popen[bytes]
    proxy: subprocess.Popen[bytes] | None
    local_port: int

    def exited(self) -> str | None:
        """Which process ended and how, or None while both run."""
        for name, proc in (("the SuperLink", self.superlink), ("the proxy (nginx)", self.proxy)):
            if proc is not None and proc.poll() is not None:
                return f"{name} exited with code {proc.returncode}"
        return None

    def stop(self) -> None:
        """Close the public address first, then stop the SuperLink (both by PID)."""
        if self.proxy is not None:
            stop(self.proxy)
        stop(self.superlink)


def _probe_host(host: str) -> str:
    """Where to check a listener bound to `host` from this machine."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host.strip("[]")


def start_server(
    srv: ServerKit,
    state_dir: Path,
    host: str,
    port: int,
    local_port: int | None = None,
    proxy: bool = True,
) -> RunningServer:
    """Start the SuperLink and, with `proxy`, nginx on `host`:`port`; return once serving.

    With the proxy, the SuperLink listens on 127.0.0.1:`local_port` (a free port when
    None), which the `flwr` connection in `<state_dir>/flwr-home` names; without it, the
    SuperLink itself serves every API on `host`:`port` (development only).
    """
    nginx = nginx_executable() if proxy else None  # refuse before anything starts
    link_host, link_port = (
        ("127.0.0.1", local_port or free_loopback_port()) if proxy else (host, port)
    )
    running = RunningServer(start_superlink(srv, state_dir, link_host, link_port), None, link_port)
    try:
        wait_until_serving(link_port, srv.ca_cert, proc=running.superlink)
        if nginx is not None:
            plan = ProxyPlan(host, port, link_port, srv.cert, srv.key, srv.ca_cert,
                             state_dir / "proxy")  # fmt: skip
            plan.state_dir.mkdir(parents=True, exist_ok=True)
            log.info("starting the proxy on %s:%d (Fleet API only)", host, port)
            running.proxy = start_proxy(plan, flower_env(state_dir / "flwr-home"), nginx)
            wait_until_serving(port, srv.ca_cert, host=_probe_host(host), proc=running.proxy,
                               what="the proxy (nginx)", log_name="proxy/error.log")  # fmt: skip
    except BaseException:
        running.stop()
        raise
    return running


def flwr_cli(args: list[str], flwr_home: Path) -> tuple[int, dict]:
    """Run a `flwr` CLI command with `--format json`; return its exit code and JSON."""
    done = subprocess.run(
        [flower_executable("flwr"), *args, "--format", "json"],
        env=flower_env(flwr_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    start = done.stdout.find("{")
    try:
        payload = json.loads(done.stdout[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        payload = {"error-message": done.stdout[-500:]}
    return done.returncode, payload


def register_sites(srv: ServerKit, flwr_home: Path, state_dir: Path) -> dict[str, str]:
    """Register every site's public key (idempotent); return site name -> node id.

    A key registered earlier (persistent state) is reported by Flower as already in use;
    its node id is then taken from `<state_dir>/sites.json`. The keys go through one
    Control API client of Flower's own in this process (`flwr supernode register` costs
    a Python start and Flower's CLI imports, ~2 s of CPU, per site); when Flower's
    internals differ from the ones this was written against, through the CLI.
    """
    known_file = state_dir / "sites.json"
    known: dict[str, str] = json.loads(known_file.read_text()) if known_file.exists() else {}
    register = _InProcessRegistration(flwr_home)
    try:
        for name, pub in srv.site_keys.items():
            rc, out = register(pub, name)
            if rc == 0 and out.get("success"):
                known[name] = str(out["node-id"])
                log.info("registered site %s (node %s)", name, known[name])
            elif "already in use" in str(out.get("error-message", "")):
                log.info("site %s was registered before", name)
            else:
                raise ProvisioningError(
                    f"registering site '{name}' failed: {out.get('error-message', 'no output')}"
                )
    finally:
        register.close()
    known_file.write_text(json.dumps(known, indent=1))
    return known


class _InProcessRegistration:
    """`flwr supernode register KEY --name NAME`'s request and result, in this process.

    Returns what the CLI prints with `--format json`: ``{"success": True, "node-id": ..}``,
    or ``{"error-message": ...}`` worded by Flower's own CLI error handler.
    """

    def __init__(self, flwr_home: Path) -> None:
        self.flwr_home = flwr_home
        self._client: Any = None
        self._in_process = True

    def __call__(self, public_key: Path, name: str) -> tuple[int, dict]:
        if self._in_process:
            try:
                return self._register(public_key, name)
            except (ImportError, AttributeError, TypeError) as err:
                log.debug("no in-process registration (%s); using the flwr CLI", err)
                self._in_process = False
        return flwr_cli(["supernode", "register", str(public_key), CONNECTION, "--name", name],
                        self.flwr_home)  # fmt: skip

    def _register(self, public_key: Path, name: str) -> tuple[int, dict]:
        import click
        from flwr.cli.supernode.register import try_load_public_key
        from flwr.cli.utils import flwr_cli_exc_handler
        from flwr.proto.control_pb2 import RegisterNodeRequest

        key = try_load_public_key(public_key)
        if self._client is None:
            self._client = control_client(self.flwr_home)
        try:
            with flwr_cli_exc_handler():
                reply = self._client.RegisterNode(
                    request=RegisterNodeRequest(public_key=key, name=name)
                )
        except click.ClickException as err:
            return 1, {"success": False, "error-message": err.message}
        if not reply.node_id:
            return 1, {"success": False, "error-message": "SuperNode couldn't be registered."}
        return 0, {"success": True, "node-id": reply.node_id}

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def control_client(flwr_home: Path) -> Any:
    """Flower's ControlHttpClient for the connection in `flwr_home` (imported lazily)."""
    from flwr.cli.flower_config import read_superlink_connection
    from flwr.cli.utils import init_http_client_from_connection

    before = os.environ.get("FLWR_HOME")
    os.environ["FLWR_HOME"] = str(flwr_home)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # "Using SuperLink: ..."
            return init_http_client_from_connection(read_superlink_connection(CONNECTION))
    finally:
        if before is None:
            os.environ.pop("FLWR_HOME", None)
        else:
            os.environ["FLWR_HOME"] = before


class SiteStatus:
    """Each site's SuperNode status as the SuperLink sees it (`online`, `offline`, ...).

    The server daemon asks every status interval. `flwr supernode ls` costs 0.8 s of CPU
    per call (a Python start and Flower's CLI imports), so this keeps one Control API
    client of Flower's own open in this process and asks it; when Flower's internals
    differ from the ones this was written against, it falls back to the CLI.
    """

    def __init__(self, flwr_home: Path, node_ids: dict[str, str]) -> None:
        self.flwr_home = flwr_home
        self.node_ids = dict(node_ids)
        self._client: Any = None
        self._in_process = True

    def __call__(self) -> dict[str, str]:
        by_id = self._list_in_process() if self._in_process else None
        if by_id is None:
            by_id = self._list_with_cli()
        if by_id is None:
            return {}
        return {site: by_id.get(node_id, "unknown") for site, node_id in self.node_ids.items()}

    @property
    def in_process(self) -> bool:
        """False once it has fallen back to the `flwr` CLI."""
        return self._in_process

    def _list_in_process(self) -> dict[str, str] | None:
        try:
            from flwr.proto.control_pb2 import ListNodesRequest
        except ImportError:
            self._in_process = False
            return None
        try:
            if self._client is None:
                self._client = control_client(self.flwr_home)
            response = self._client.ListNodes(ListNodesRequest())
        except (ImportError, AttributeError, TypeError) as err:
            log.debug("no in-process node list (%s); using the flwr CLI", err)
            self._in_process = False
            return None
        except Exception as err:  # the SuperLink restarting, a dropped connection
            log.debug("node list failed: %s", err)
            self.close()
            return None
        return {str(node.node_id): str(node.status) for node in response.nodes_info}

    def _list_with_cli(self) -> dict[str, str] | None:
        rc, out = flwr_cli(["supernode", "ls", CONNECTION], self.flwr_home)
        if rc != 0:
            return None
        return {str(node["node-id"]): str(node["status"]) for node in out.get("nodes", [])}

    def close(self) -> None:
        """Close the Control API client, if one is open."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
