"""A real deployment: SuperLink + 3 SuperNodes as processes, TLS, site authentication, SecAgg+.

Everything goes through the `medfleet` CLI with the commands docker/compose.yaml runs. Two
placements: all on 127.0.0.1, and (bonus, root only) server and sites in separate network
namespaces joined by a bridge, so they really are different hosts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from server.checkpoint import load_checkpoint
from server.provision import provision
from shared.process import stop
from shared.secagg import QUANTIZATION_RANGE
from tests.deployment import harness
from tests.deployment.netns import Lan, in_netns, netns_available

pytestmark = pytest.mark.slow

SITES = ("site-a", "site-b", "site-c")
ROUNDS = 2
MAX_WEIGHT = 100.0
CLIPPING = 8.0


@dataclass
class Deployment:
    root: Path
    address: str
    data: list[Path]
    procs: harness.Processes
    lan: Lan | None = None
    server_log: Path = field(init=False)
    server: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.server_log = self.root / "server.log"

    @property
    def kits(self) -> Path:
        return self.root / "kits"

    @property
    def home(self) -> Path:
        return self.root / "flwr-home"  # FLWR_HOME of every process the tests start

    def on_server(self) -> list[str]:
        """Command prefix placing a process on the server's host."""
        return in_netns(self.lan.server_ns, []) if self.lan else []

    def on_site(self, index: int) -> list[str]:
        """Command prefix placing a process on site `index`'s host."""
        return in_netns(self.lan.site_ns(index), []) if self.lan else []

    def site_cli(self, args: list[str], index: int = 0) -> subprocess.CompletedProcess[str]:
        return harness.run_cli(args, self.home, timeout=180, prefix=self.on_site(index))


def _federation(path: Path, address: str, sites: tuple[str, ...]) -> Path:
    names = ", ".join(f'"{s}"' for s in sites)
    path.write_text(f'[server]\naddress = "{address}"\n[sites]\nnames = [{names}]\n')
    return path


def _start_server(dep: Deployment) -> subprocess.Popen[bytes]:
    host = "0.0.0.0" if dep.lan else "127.0.0.1"
    args = harness.server_start_args(str(dep.kits / "server"), str(dep.root / "server-state"), host)
    dep.server = dep.procs.start(
        [*args, "--status-interval", "2"], dep.server_log, prefix=dep.on_server()
    )
    harness.wait_for(dep.server_log, r"SuperLink pid \d+ serving", 120, dep.server)
    return dep.server


def _start(dep: Deployment) -> None:
    server = _start_server(dep)
    for i, site in enumerate(SITES):
        args = harness.site_start_args(
            str(dep.kits / site), str(dep.data[i]), "cpu", str(dep.root / f"{site}-state")
        )
        dump = f"debug-dump-dir={dep.root / 'dumps' / site}"
        extra = ["--runtime-port", str(harness.free_port()), "--node-config", dump]
        dep.procs.start([*args, *extra], dep.root / f"{site}.log", prefix=dep.on_site(i))
    harness.wait_for(dep.server_log, r"sites connected: site-a, site-b, site-c;", 120, server)


@pytest.fixture(scope="module", params=["loopback", "netns"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    from simulations.synth import generate_sites

    lan = None
    if request.param == "netns":
        reason = netns_available()
        if reason:
            pytest.skip(f"separate-host placement skipped: {reason}")
        lan = Lan(SITES)
    root = tmp_path_factory.mktemp(f"deploy-{request.param}")
    port = harness.free_port()
    address = f"{lan.server_ip if lan else '127.0.0.1'}:{port}"
    provision(_federation(root / "hospitals.toml", address, SITES), root / "kits")
    data = generate_sites(root / "data", n_sites=len(SITES), seed=0, scale=0.15)
    dep = Deployment(root, address, data, harness.Processes(root / "flwr-home"), lan)
    try:
        if lan:
            lan.up()
        _start(dep)
        yield dep
    finally:
        dep.procs.close()
        if lan:
            lan.down()


@pytest.fixture(scope="module")
def finished_run(deployment: Deployment) -> Path:
    dep = deployment
    out = dep.root / "run"
    app = harness.copy_app(dep.root / "app")
    done = harness.run_cli(
        ["server", "run", "--kit", str(dep.kits / "server"), "--state-dir",
         str(dep.root / "server-state"), "--rounds", str(ROUNDS), "--out-dir", str(out),
         "--app", str(app), "--set", "local-epochs=1", "--set", "image-size=32",
         "--set", "batch-size=8", "--set", f"secagg-max-weight={MAX_WEIGHT}",
         "--set", "debug-record-masked=true"],
        dep.home,
        timeout=540,  # about 90 s on two idle cores; CI machines are often shared
        prefix=dep.on_server(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "run.json").is_file(), done.stdout[-3000:]
    return out


def _arrays(path: Path, prefix: str = "arr_") -> list[np.ndarray]:
    with np.load(path) as npz:
        keys = [k for k in npz.files if k.startswith(prefix)]
        return [npz[k] for k in sorted(keys, key=lambda k: int(k.split("_")[-1]))]


def _dump(dep: Deployment, site: str, rnd: int) -> tuple[list[np.ndarray], int]:
    path = dep.root / "dumps" / site / f"round-{rnd}.npz"
    with np.load(path) as npz:
        return _arrays(path), int(npz["num_examples"])


def test_all_sites_took_part(deployment: Deployment, finished_run: Path) -> None:
    # Prepare
    text = json.dumps(json.loads((finished_run / "run.json").read_text()))
    # Assert: every site reported metrics and sent an update in every round
    for site in SITES:
        assert f'"{site}"' in text
        for rnd in range(1, ROUNDS + 1):
            assert (deployment.root / "dumps" / site / f"round-{rnd}.npz").is_file()


@pytest.mark.parametrize("rnd", range(1, ROUNDS + 1))
def test_global_weights_equal_plain_fedavg(
    deployment: Deployment, finished_run: Path, rnd: int
) -> None:
    # Prepare: the reference FedAvg, computed here from the sites' own updates
    updates = [_dump(deployment, site, rnd) for site in SITES]
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
    deployment: Deployment, finished_run: Path, rnd: int
) -> None:
    # Prepare: what the server received (recorded by the test-only workflow)
    path = finished_run / "secagg-debug" / f"round-{rnd}-masked.npz"
    with np.load(path) as npz:
        nodes = sorted({k.split("_")[0] for k in npz.files if k.startswith("node")})
    uploads = [_arrays(path, f"{node}_") for node in nodes]
    assert len(uploads) == len(SITES)
    for site in SITES:
        # Execute: the site's update quantised in the clear (what it would be unmasked)
        arrays, n = _dump(deployment, site, rnd)
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


def test_unregistered_site_is_refused(deployment: Deployment) -> None:
    # Prepare: a kit for a site that the running server never registered
    dep = deployment
    provision(_federation(dep.root / "hospitals.toml", dep.address, (*SITES, "site-d")), dep.kits)
    args = harness.site_start_args(
        str(dep.kits / "site-d"), str(dep.data[0]), "cpu", str(dep.root / "site-d-state")
    )
    # Execute
    done = dep.site_cli([*args, "--runtime-port", str(harness.free_port()), "--max-restarts", "0"])
    # Assert
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "refused site 'site-d'" in done.stderr and "not registered" in done.stderr


def test_site_trusting_another_ca_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    # Prepare: a kit of another federation (its own CA), pointed at this server
    dep = deployment
    provision(_federation(tmp_path / "other.toml", dep.address, ("site-a",)), tmp_path / "kits")
    args = harness.site_start_args(
        str(tmp_path / "kits" / "site-a"), str(dep.data[0]), "cpu", str(tmp_path / "state")
    )
    # Execute
    done = dep.site_cli([*args, "--max-restarts", "0"])
    # Assert
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "does not trust" in done.stderr and "unable to get local issuer" in done.stderr


def test_connection_without_tls_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    # Prepare: a plain-HTTP request, and a SuperNode with TLS switched off
    dep = deployment
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
        [*dep.on_site(0), sys.executable, "-c", plain], capture_output=True, text=True
    )
    log_file = tmp_path / "insecure.log"
    proc = dep.procs.start(supernode, log_file, cli=False, prefix=dep.on_site(0))
    # Assert
    assert http.returncode != 0, "the server answered plain HTTP"
    assert proc.wait(timeout=120) != 0
    text = log_file.read_text()
    assert "SuperNode ID" not in text and "Connection attempt failed" in text


def test_private_key_with_wrong_permissions_is_refused_before_connecting(
    deployment: Deployment, tmp_path: Path
) -> None:
    # Prepare
    dep = deployment
    site_kit = shutil.copytree(dep.kits / "site-b", tmp_path / "site-b")
    (site_kit / "auth.key").chmod(0o644)
    server_kit = shutil.copytree(dep.kits / "server", tmp_path / "server")
    (server_kit / "server.key").chmod(0o640)
    args = harness.site_start_args(str(site_kit), str(dep.data[1]), "cpu", str(tmp_path / "state"))
    # Execute
    site = dep.site_cli(args, 1)
    server = harness.run_cli(
        harness.server_start_args(str(server_kit), str(tmp_path / "srv"), "127.0.0.1"), dep.home
    )
    # Assert: refused with the fix, and nothing was started (no Flower state written)
    assert site.returncode == 2 and "mode 0644" in site.stderr and "chmod 600" in site.stderr
    assert server.returncode == 2 and "chmod 600" in server.stderr
    assert not (tmp_path / "state").exists() and not (tmp_path / "srv").exists()


def test_sites_survive_a_server_restart(deployment: Deployment) -> None:
    # Prepare: stop the server by its PID; the site daemons keep running
    dep = deployment
    assert dep.server is not None
    stop(dep.server)
    dep.procs.procs.remove(dep.server)
    dep.server_log = dep.root / "server-restarted.log"
    # Execute: the same command, the same state database
    server = _start_server(dep)
    # Assert: every site reconnects by itself, with its registration kept
    harness.wait_for(dep.server_log, r"sites connected: site-a, site-b, site-c;", 150, server)
    assert "was registered before" in dep.server_log.read_text()
