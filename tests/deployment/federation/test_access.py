"""Only the coordinator can submit, stop and list runs; the sites train through the same address.

While the package's federation trains the coordinator's run, an outsider holding the
federation's CA certificate (every site has it) tries Flower's own CLI and the HTTP routes
against the public address from another host (site-a's).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.process import flower_env, flower_executable
from tests.deployment.federation.conftest import ROUNDS, SITES, TrainingRun
from tests.deployment.fleet import Fleet

pytestmark = pytest.mark.slow

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


def _flwr(fleet: Fleet, args: list[str], home: Path, prefix: list[str]) -> dict:
    """Flower's own CLI with `--format json`: its JSON answer."""
    done = subprocess.run(
        [*prefix, flower_executable("flwr"), *args, "--format", "json"],
        env=flower_env(home),
        capture_output=True,
        text=True,
        timeout=180,
    )
    start = done.stdout.find("{")
    assert start >= 0, done.stdout[-2000:] + done.stderr[-2000:]
    return dict(json.loads(done.stdout[start:]))


def _coordinator(fleet: Fleet, args: list[str]) -> dict:
    """A `flwr` command on the server host, through `server start`'s connection."""
    return _flwr(fleet, [*args, "medfleet"], fleet.server_state / "flwr-home", fleet.on_server())


def _outsider(fleet: Fleet, args: list[str]) -> dict:
    """A `flwr` command from another host, pointed at the public address."""
    home = fleet.root / "outsider"
    if not (home / "config.toml").exists():
        home.mkdir(exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "outside"\n\n[superlink.outside]\n'
            f'address = "{fleet.address}"\n'
            f'root-certificates = "{fleet.kits / "site-a" / "ca.pem"}"\n'
        )
    return _flwr(fleet, [*args, "outside"], home, fleet.on_site("site-a"))


def _run_ids(fleet: Fleet) -> list[tuple[str, str]]:
    return [(str(r["run-id"]), r["status"]) for r in _coordinator(fleet, ["ls"])["runs"]]


@pytest.fixture(scope="module")
def run_id(federation: Fleet, training_run: TrainingRun) -> str:
    """The id of the coordinator's run, as the coordinator lists it."""
    runs = _run_ids(federation)
    assert len(runs) == 1, runs
    return runs[0][0]


def _refused(answer: dict, route: str) -> bool:
    """True when Flower's CLI failed with the proxy's 403 for `route`."""
    error = str(answer.get("error-message", ""))
    return answer.get("success") is False and "403 Forbidden" in error and route in error


def test_outsider_cannot_list_runs(federation: Fleet, run_id: str) -> None:
    # Execute
    answer = _outsider(federation, ["ls"])
    # Assert
    assert _refused(answer, "/v1/control/list-runs"), answer


def test_outsider_cannot_stop_the_run(federation: Fleet, run_id: str) -> None:
    # Execute
    answer = _outsider(federation, ["stop", run_id])
    # Assert
    assert _refused(answer, "/v1/control/stop-run"), answer


def test_outsider_cannot_submit_a_run(federation: Fleet, run_id: str) -> None:
    # Prepare
    before = [rid for rid, _ in _run_ids(federation)]
    app = federation.app  # the very app the coordinator submitted
    # Execute
    answer = _outsider(federation, ["run", str(app)])
    # Assert: refused, and no run was created
    assert _refused(answer, "/v1/control/start-run"), answer
    assert [rid for rid, _ in _run_ids(federation)] == before


def test_control_and_runtime_routes_answer_403_from_another_host(
    federation: Fleet, run_id: str
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
        [*fed.on_site("site-a"), sys.executable, "-c", probe, *REFUSED_ROUTES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Assert
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == dict.fromkeys(REFUSED_ROUTES, 403)


def test_superlink_port_is_not_reachable_from_another_host(federation: Fleet, run_id: str) -> None:
    # Prepare
    fed = federation
    if fed.lan is None:
        pytest.skip("needs separate network namespaces (root)")
    server_log = (fed.root / "server.log").read_text()
    match = re.search(r"Control API on 127\.0\.0\.1:(\d+)", server_log)
    assert match, server_log[-2000:]
    probe = (
        "import socket, sys\n"
        f"try: socket.create_connection(({fed.lan.server_ip!r}, {match[1]}), timeout=10)\n"
        "except ConnectionRefusedError: sys.exit(0)\n"
        "sys.exit('connected')\n"
    )
    # Execute
    done = subprocess.run([*fed.on_site("site-a"), sys.executable, "-c", probe],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    # Assert: refused at the TCP level (the coordinator reaches it on the server's loopback)
    assert done.returncode == 0, done.stderr


def test_run_completes_with_every_site_through_the_public_address(
    federation: Fleet, training_run: TrainingRun, run_id: str
) -> None:
    # Execute: the coordinator's run, which the outsider tried to stop
    fed = federation
    out = training_run.finish()
    # Assert
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed"
    assert len(record["rounds"]) == ROUNDS
    text = json.dumps(record)
    assert all(f'"{site}"' in text for site in SITES)
    # The outsider's submission created no run, its stop stopped nothing
    assert (run_id, "finished:completed") in _run_ids(fed)
    # The proxy answered the sites' Fleet calls and refused the outsider's Control calls
    access = (fed.server_state / "proxy" / "access.log").read_text()
    assert re.search(r'"POST /v1/fleet/push-messages HTTP/1.1" 200', access)
    for route in ("start-run", "stop-run", "list-runs"):
        assert f'"POST /v1/control/{route} HTTP/1.1" 403' in access
