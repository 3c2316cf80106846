"""A real deployment trains: every site's update is in the global model, the server saw masks.

The package's federation (TLS, site authentication, SecAgg+, three sites on separate
hosts where namespaces can be made) and its coordinator's 2-round run, whose sites dump
what they sent (debug-dump-dir) and whose server records what it received. Then what a
server must refuse, and last a server restart that the sites survive.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from server.checkpoint import load_checkpoint
from server.provision import provision
from shared.process import stop
from shared.secagg import QUANTIZATION_RANGE
from tests.deployment import harness
from tests.deployment.federation.conftest import MAX_WEIGHT, ROUNDS, SITES
from tests.deployment.fleet import Fleet

pytestmark = pytest.mark.slow

CLIPPING = 8.0


def _arrays(path: Path, prefix: str = "arr_") -> list[np.ndarray]:
    with np.load(path) as npz:
        keys = [k for k in npz.files if k.startswith(prefix)]
        return [npz[k] for k in sorted(keys, key=lambda k: int(k.split("_")[-1]))]


def _dump(fleet: Fleet, site: str, rnd: int) -> tuple[list[np.ndarray], int]:
    path = fleet.dumps(site) / f"round-{rnd}.npz"
    with np.load(path) as npz:
        return _arrays(path), int(npz["num_examples"])


def test_all_sites_took_part(federation: Fleet, finished_run: Path) -> None:
    # Prepare
    text = json.dumps(json.loads((finished_run / "run.json").read_text()))
    # Assert: every site reported metrics and sent an update in every round
    for site in SITES:
        assert f'"{site}"' in text
        for rnd in range(1, ROUNDS + 1):
            assert (federation.dumps(site) / f"round-{rnd}.npz").is_file()


_STATUS_PROBE = """
import json, sys
from pathlib import Path
from server.launcher import CONNECTION, SiteStatus, flwr_cli
home, node_ids = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
rc, out = flwr_cli(["supernode", "ls", CONNECTION], home)
status = SiteStatus(home, node_ids)
first, second = status(), status()  # the second reuses the open client
status.close()
print(json.dumps({"rc": rc, "cli": out.get("nodes"), "first": first, "second": second,
                  "in_process": status.in_process}))
"""


def test_site_status_is_read_in_process_and_agrees_with_the_cli(federation: Fleet) -> None:
    # Prepare: on the server's host, its own connection and the node ids it registered
    state = federation.server_state
    home, ids = str(state / "flwr-home"), str(state / "sites.json")
    args = [sys.executable, "-c", _STATUS_PROBE, home, ids]
    # Execute
    done = subprocess.run([*federation.on_server(), *args], cwd=harness.REPO, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    # Assert: every site online, as the CLI says, and no fall-back to the CLI was needed
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    node_ids = json.loads((state / "sites.json").read_text())
    by_cli = {str(n["node-id"]): str(n["status"]) for n in seen["cli"]}
    assert seen["rc"] == 0
    assert seen["first"] == seen["second"] == {site: by_cli[node_ids[site]] for site in SITES}
    assert set(seen["first"].values()) == {"online"}
    assert seen["in_process"] is True


@pytest.mark.parametrize("rnd", range(1, ROUNDS + 1))
def test_global_weights_equal_plain_fedavg(federation: Fleet, finished_run: Path, rnd: int) -> None:
    # Prepare: the reference FedAvg, computed here from the sites' own updates
    updates = [_dump(federation, site, rnd) for site in SITES]
    total = sum(n for _, n in updates)
    reference = [
        sum(arrs[i].astype(np.float64) * n for arrs, n in updates) / total
        for i in range(len(updates[0][0]))
    ]
    # SecAgg+ rounds each weighted update to steps of 2c/Q (error < 1 step per site); the
    # server then divides the sum by the total weight, sum(n) / max_weight.
    step = 2 * CLIPPING / QUANTIZATION_RANGE
    atol = len(SITES) * step / (total / MAX_WEIGHT) * 1.01 + 1e-6
    # Execute
    global_arrays = list(
        load_checkpoint(finished_run / "checkpoints" / f"round-{rnd}.npz").state.values()
    )
    # Assert
    assert len(global_arrays) == len(reference)
    for got, want in zip(global_arrays, reference, strict=True):
        if np.issubdtype(got.dtype, np.integer):  # counters (e.g. batches tracked)
            assert np.allclose(got, want, atol=1)
            continue
        err = np.abs(got.astype(np.float64) - want).max()
        assert np.allclose(got.astype(np.float64), want, rtol=1e-5, atol=atol), err


@pytest.mark.parametrize("rnd", range(1, ROUNDS + 1))
def test_server_received_only_masked_vectors(
    federation: Fleet, finished_run: Path, rnd: int
) -> None:
    # Prepare: what the server received (recorded by the test-only workflow)
    path = finished_run / "secagg-debug" / f"round-{rnd}-masked.npz"
    with np.load(path) as npz:
        nodes = sorted({k.split("_")[0] for k in npz.files if k.startswith("node")})
    uploads = [_arrays(path, f"{node}_") for node in nodes]
    assert len(uploads) == len(SITES)
    for site in SITES:
        # Execute: the site's update quantised in the clear (what it would be unmasked)
        arrays, n = _dump(federation, site, rnd)
        ratio = round(n / MAX_WEIGHT * QUANTIZATION_RANGE) / QUANTIZATION_RANGE
        flat = np.concatenate([a.ravel().astype(np.float64) for a in arrays]) * ratio
        clear = (
            (np.clip(flat, -CLIPPING, CLIPPING) + CLIPPING) / (2 * CLIPPING) * QUANTIZATION_RANGE
        )
        # Assert: no upload is, or nearly is, that vector
        for upload in uploads:
            masked = np.concatenate([a.ravel().astype(np.float64) for a in upload[1:]])
            assert masked.shape == clear.shape
            assert np.mean(np.abs(masked - clear) <= 2) < 0.01
            assert not np.allclose(masked, clear, atol=QUANTIZATION_RANGE / 100)


def test_unregistered_site_is_refused(federation: Fleet) -> None:
    # Prepare: a kit for a site that the running server never registered
    dep = federation
    fed_file = harness.federation_file(dep.root / "hospitals.toml", dep.address, (*SITES, "site-d"))
    provision(fed_file, dep.kits)
    args = harness.site_start_args(
        str(dep.kits / "site-d"), str(dep.data["site-a"]), "cpu", str(dep.root / "site-d-state")
    )
    # Execute
    extra = ["--runtime-port", str(harness.free_port()), "--max-restarts", "0"]
    done = dep.cli([*args, *extra], site="site-a")
    # Assert
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "refused site 'site-d'" in done.stderr and "not registered" in done.stderr


def test_site_trusting_another_ca_is_refused(federation: Fleet, tmp_path: Path) -> None:
    # Prepare: a kit of another federation (its own CA), pointed at this server
    dep = federation
    other = harness.federation_file(tmp_path / "other.toml", dep.address, ("site-a",))
    provision(other, tmp_path / "kits")
    args = harness.site_start_args(
        str(tmp_path / "kits" / "site-a"), str(dep.data["site-a"]), "cpu", str(tmp_path / "state")
    )
    # Execute
    done = dep.cli([*args, "--max-restarts", "0"], site="site-a")
    # Assert
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "does not trust" in done.stderr and "unable to get local issuer" in done.stderr


def test_connection_without_tls_is_refused(federation: Fleet, tmp_path: Path) -> None:
    # Prepare: a plain-HTTP request, and a SuperNode with TLS switched off
    dep = federation
    plain = (
        "import urllib.request as u, sys\n"
        f"try: u.urlopen('http://{dep.address}/health', timeout=5)\n"
        "except Exception as e: sys.exit(type(e).__name__)\n"
    )
    supernode = [
        str(Path(sys.executable).parent / "flower-supernode"),
        "--insecure",
        "--superlink",
        dep.address,
        "--max-retries",
        "2",
        "--port",
        str(harness.free_port()),
        "--node-config",
        'data-dir="/tmp"',
    ]
    # Execute
    http = subprocess.run(
        [*dep.on_site("site-a"), sys.executable, "-c", plain], capture_output=True, text=True
    )
    log_file = tmp_path / "insecure.log"
    proc = dep.procs.start(supernode, log_file, cli=False, prefix=dep.on_site("site-a"))
    # Assert
    assert http.returncode != 0, "the server answered plain HTTP"
    assert proc.wait(timeout=120) != 0
    text = log_file.read_text()
    assert "SuperNode ID" not in text and "Connection attempt failed" in text


def test_private_key_with_wrong_permissions_is_refused_before_connecting(
    federation: Fleet, tmp_path: Path
) -> None:
    # Prepare
    dep = federation
    site_kit = shutil.copytree(dep.kits / "site-b", tmp_path / "site-b")
    (site_kit / "auth.key").chmod(0o644)
    server_kit = shutil.copytree(dep.kits / "server", tmp_path / "server")
    (server_kit / "server.key").chmod(0o640)
    args = harness.site_start_args(
        str(site_kit), str(dep.data["site-b"]), "cpu", str(tmp_path / "state")
    )
    # Execute
    site = dep.cli(args, site="site-b")
    server = harness.run_cli(
        harness.server_start_args(str(server_kit), str(tmp_path / "srv"), "127.0.0.1"), dep.home
    )
    # Assert: refused with the fix, and nothing was started (no Flower state written)
    assert site.returncode == 2 and "mode 0644" in site.stderr and "chmod 600" in site.stderr
    assert server.returncode == 2 and "chmod 600" in server.stderr
    assert not (tmp_path / "state").exists() and not (tmp_path / "srv").exists()


def test_sites_survive_a_server_restart(federation: Fleet, finished_run: Path) -> None:
    # Prepare: stop the server by its PID; the site daemons keep running
    dep = federation
    assert dep.server is not None
    stop(dep.server)
    dep.procs.procs.remove(dep.server)
    # Execute: the same command, the same state database
    log_file = dep.start_server("server-restarted.log")
    # Assert: every site reconnects by itself, with its registration kept
    dep.wait_online(log_file, SITES)
    assert "was registered before" in log_file.read_text()
