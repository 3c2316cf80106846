"""Only the coordinator can submit, stop and list runs; the sites train through the same address.

A real deployment (TLS, site authentication, SecAgg+) started with `medfleet server start`:
nginx on the public address, the SuperLink on the server's loopback. Server and sites sit
in separate network namespaces (all on 127.0.0.1 when namespaces cannot be made here).
While a run trains, an outsider holding the federation's CA certificate (every site has
it) tries Flower's own CLI and the HTTP routes against the public address.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.provision import provision
from shared.process import flower_env, flower_executable
from tests.deployment import harness
from tests.deployment.netns import Lan, in_netns, netns_available

pytestmark = pytest.mark.slow

SITES = ("site-a", "site-b", "site-c")
ROUNDS = 2
TRAINING = ("local-epochs=1", "image-size=32", "batch-size=8")
# Control and Runtime routes of Flower 1.42 (flwr/superlink/routers, supercore/routers).
REFUSED_ROUTES = (
    "/v1/control/start-run",
    "/v1/control/stop-run",
    "/v1/control/list-runs",
    "/v1/control/stream-logs",
    "/v1/control/list-nodes",
    "/v1/control/register-node",
    "/v1/runtime/pull-messages",
    "/v1/runtime/push-messages",
    "/docs",
)


@dataclass
class Federation:
    root: Path
    address: str  # the public address, as in every kit
    procs: harness.Processes
    lan: Lan | None
    server_log: Path

    @property
    def kits(self) -> Path:
        return self.root / "kits"

    @property
    def state(self) -> Path:
        return self.root / "server-state"

    def on_server(self) -> list[str]:
        return in_netns(self.lan.server_ns, []) if self.lan else []

    def on_other_host(self) -> list[str]:
        """Another machine on the network: site-a's host."""
        return in_netns(self.lan.site_ns(0), []) if self.lan else []

    def flwr(self, args: list[str], home: Path, prefix: list[str]) -> tuple[int, dict]:
        """Flower's own CLI with `--format json`: exit code and its JSON answer."""
        done = subprocess.run(
            [*prefix, flower_executable("flwr"), *args, "--format", "json"],
            env=flower_env(home),
            capture_output=True,
            text=True,
            timeout=180,
        )
        start = done.stdout.find("{")
        assert start >= 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.returncode, json.loads(done.stdout[start:])

    def coordinator(self, args: list[str]) -> dict:
        """A `flwr` command on the server host, through `server start`'s connection."""
        return self.flwr([*args, "medfleet"], self.state / "flwr-home", self.on_server())[1]

    def outsider(self, args: list[str]) -> dict:
        """A `flwr` command from another host, pointed at the public address."""
        home = self.root / "outsider"
        if not (home / "config.toml").exists():
            home.mkdir(exist_ok=True)
            (home / "config.toml").write_text(
                '[superlink]\ndefault = "outside"\n\n[superlink.outside]\n'
                f'address = "{self.address}"\n'
                f'root-certificates = "{self.kits / "site-a" / "ca.pem"}"\n'
            )
        return self.flwr([*args, "outside"], home, self.on_other_host())[1]


def _start(fed: Federation, data: list[Path]) -> None:
    host = "0.0.0.0" if fed.lan else "127.0.0.1"
    args = harness.server_start_args(str(fed.kits / "server"), str(fed.state), host)
    server = fed.procs.start([*args, "--status-interval", "2"], fed.server_log,
                             prefix=fed.on_server())  # fmt: skip
    harness.wait_for(fed.server_log, r"SuperLink pid \d+ serving", 120, server)
    for i, site in enumerate(SITES):
        args = harness.site_start_args(
            str(fed.kits / site), str(data[i]), "cpu", str(fed.root / f"{site}-state")
        )
        prefix = in_netns(fed.lan.site_ns(i), []) if fed.lan else []
        fed.procs.start([*args, "--runtime-port", str(harness.free_port())],
                        fed.root / f"{site}.log", prefix=prefix)  # fmt: skip
    harness.wait_for(fed.server_log, r"sites connected: site-a, site-b, site-c;", 150, server)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    from simulations.synth import generate_sites

    lan = Lan(SITES) if netns_available() is None else None
    root = tmp_path_factory.mktemp("proxy-deploy")
    address = f"{lan.server_ip if lan else '127.0.0.1'}:{harness.free_port()}"
    fed_file = harness.federation_file(root / "hospitals.toml", address, SITES)
    provision(fed_file, root / "kits")
    data = generate_sites(root / "data", n_sites=len(SITES), seed=0, scale=0.15)
    fed = Federation(root, address, harness.Processes(root / "flwr-home"), lan,
                     root / "server.log")  # fmt: skip
    try:
        if lan:
            lan.up()
        _start(fed, data)
        yield fed
    finally:
        fed.procs.close()
        if lan:
            lan.down()


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    run_id: str
    out: Path


@pytest.fixture(scope="module")
def running(federation: Federation) -> Run:
    """A training run the coordinator submitted, seen as listed by the coordinator."""
    fed = federation
    out = fed.root / "run"
    sets = [arg for key in TRAINING for arg in ("--set", key)]
    args = ["server", "run", "--kit", str(fed.kits / "server"), "--state-dir", str(fed.state),
            "--rounds", str(ROUNDS), "--out-dir", str(out),
            "--app", str(harness.copy_app(fed.root / "app")), *sets]  # fmt: skip
    proc = fed.procs.start(args, fed.root / "server-run.log", prefix=fed.on_server())
    harness.wait_json(out / "run.json", lambda record: True, 300, [proc])
    runs = fed.coordinator(["ls"])["runs"]
    assert len(runs) == 1, runs
    return Run(proc, str(runs[0]["run-id"]), out)


def _refused(answer: dict, route: str) -> None:
    assert answer["success"] is False, answer
    assert "403 Forbidden" in answer["error-message"], answer
    assert route in answer["error-message"], answer


def test_outsider_cannot_list_runs(federation: Federation, running: Run) -> None:
    _refused(federation.outsider(["ls"]), "/v1/control/list-runs")


def test_outsider_cannot_stop_the_run(federation: Federation, running: Run) -> None:
    _refused(federation.outsider(["stop", running.run_id]), "/v1/control/stop-run")


def test_outsider_cannot_submit_a_run(federation: Federation, running: Run) -> None:
    app = federation.root / "app"  # the very app the coordinator submitted
    _refused(federation.outsider(["run", str(app)]), "/v1/control/start-run")


def test_control_and_runtime_routes_answer_403_from_another_host(
    federation: Federation, running: Run
) -> None:
    # Prepare: plain HTTPS POSTs, as any HTTP client would send them
    fed = federation
    host, port = fed.address.rsplit(":", 1)
    probe = (
        "import http.client, json, ssl, sys\n"
        f"ctx = ssl.create_default_context(cafile={str(fed.kits / 'site-a' / 'ca.pem')!r})\n"
        "codes = {}\n"
        "for path in sys.argv[1:]:\n"
        f"    c = http.client.HTTPSConnection({host!r}, {port}, context=ctx, timeout=30)\n"
        "    c.request('POST', path, body=b'{}', headers={'content-type': 'application/json'})\n"
        "    codes[path] = c.getresponse().status\n"
        "print(json.dumps(codes))\n"
    )
    # Execute
    done = subprocess.run(
        [*fed.on_other_host(), sys.executable, "-c", probe, *REFUSED_ROUTES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Assert
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == dict.fromkeys(REFUSED_ROUTES, 403)


def test_superlink_port_is_not_reachable_from_another_host(
    federation: Federation, running: Run
) -> None:
    # Prepare
    fed = federation
    if fed.lan is None:
        pytest.skip("needs separate network namespaces (root)")
    match = re.search(r"Control API on 127\.0\.0\.1:(\d+)", fed.server_log.read_text())
    assert match, fed.server_log.read_text()[-2000:]
    probe = (
        "import socket, sys\n"
        f"try: socket.create_connection(({fed.lan.server_ip!r}, {match[1]}), timeout=10)\n"
        "except ConnectionRefusedError: sys.exit(0)\n"
        "sys.exit('connected')\n"
    )
    # Execute
    done = subprocess.run([*fed.on_other_host(), sys.executable, "-c", probe],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    # Assert: refused at the TCP level (the coordinator reaches it on the server's loopback)
    assert done.returncode == 0, done.stderr


def test_run_completes_with_every_site_through_the_public_address(
    federation: Federation, running: Run
) -> None:
    # Execute: the coordinator's run, which the outsider tried to stop
    fed = federation
    code = running.proc.wait(timeout=600)
    # Assert
    log = (fed.root / "server-run.log").read_text(errors="replace")
    assert code == 0, log[-3000:]
    record = json.loads((running.out / "run.json").read_text())
    assert record["status"] == "completed"
    assert len(record["rounds"]) == ROUNDS
    text = json.dumps(record)
    assert all(f'"{site}"' in text for site in SITES)
    # The outsider's submission created no run, its stop stopped nothing
    runs = fed.coordinator(["ls"])["runs"]
    assert [(r["run-id"], r["status"]) for r in runs] == [(running.run_id, "finished:completed")]
    # The proxy answered the sites' Fleet calls and refused the outsider's Control calls
    access = (fed.state / "proxy" / "access.log").read_text()
    assert re.search(r'"POST /v1/fleet/push-messages HTTP/1.1" 200', access)
    for route in ("start-run", "stop-run", "list-runs"):
        assert f'"POST /v1/control/{route} HTTP/1.1" 403' in access
