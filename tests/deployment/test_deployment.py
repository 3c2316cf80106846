"""A real deployment on 127.0.0.1: SuperLink + 3 SuperNodes over TLS, site auth, SecAgg+.

Everything goes through the `medfleet` CLI, exactly as docker/compose.yaml runs it.
"""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from server.provision import provision
from shared.secagg import QUANTIZATION_RANGE
from tests.deployment import harness

pytestmark = pytest.mark.slow

SITES = ("site-a", "site-b", "site-c")
ROUNDS = 2
MAX_WEIGHT = 100.0
CLIPPING = 8.0


@dataclass
class Deployment:
    root: Path
    kits: Path
    port: int
    data: list[Path]
    procs: harness.Processes
    server_log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _federation(path: Path, port: int, sites: tuple[str, ...]) -> Path:
    names = ", ".join(f'"{s}"' for s in sites)
    path.write_text(f'[server]\naddress = "127.0.0.1:{port}"\n[sites]\nnames = [{names}]\n')
    return path


def _site_data(root: Path) -> list[Path]:
    from simulations.synth import generate_sites

    return generate_sites(root, n_sites=len(SITES), seed=0, scale=0.15)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deploy")
    home = root / "flwr-home"  # FLWR_HOME of every process the tests start
    port = harness.free_port()
    provision(_federation(root / "hospitals.toml", port, SITES), root / "kits")
    procs = harness.Processes(home)
    dep = Deployment(
        root, root / "kits", port, _site_data(root / "data"), procs, root / "server.log"
    )
    try:
        state = str(root / "server-state")
        args = harness.server_start_args(str(dep.kits / "server"), state, "127.0.0.1")
        server = procs.start([*args, "--status-interval", "2"], dep.server_log)
        harness.wait_for(dep.server_log, r"SuperLink pid \d+ serving", 90, server)
        for i, site in enumerate(SITES):
            args = harness.site_start_args(
                str(dep.kits / site), str(dep.data[i]), "cpu", str(root / f"{site}-state")
            )
            dump = f"debug-dump-dir={root / 'dumps' / site}"
            extra = ["--runtime-port", str(harness.free_port()), "--node-config", dump]
            procs.start([*args, *extra], root / f"{site}.log")
        harness.wait_for(dep.server_log, r"sites connected: site-a, site-b, site-c;", 90, server)
        yield dep
    finally:
        procs.close()


@pytest.fixture(scope="module")
def finished_run(deployment: Deployment) -> Path:
    out = deployment.root / "run"
    app = harness.copy_app(deployment.root / "app")
    done = harness.run_cli(
        ["server", "run", "--kit", str(deployment.kits / "server"), "--state-dir",
         str(deployment.root / "server-state"), "--rounds", str(ROUNDS), "--out-dir", str(out),
         "--app", str(app), "--set", "local-epochs=1", "--set", "image-size=32",
         "--set", "batch-size=8", "--set", f"secagg-max-weight={MAX_WEIGHT}",
         "--set", "debug-record-masked=true"],
        deployment.root / "flwr-home",
        timeout=540,  # about 90 s on two idle cores; CI machines are often shared
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "run.json").is_file(), done.stdout[-3000:]
    return out


def _arrays(path: Path, prefix: str = "arr_") -> list[np.ndarray]:
    with np.load(path) as npz:
        keys = sorted(
            (k for k in npz.files if k.startswith(prefix)), key=lambda k: int(k.split("_")[-1])
        )
        return [npz[k] for k in keys]


def _dump(dep: Deployment, site: str, rnd: int) -> tuple[list[np.ndarray], int]:
    path = dep.root / "dumps" / site / f"round-{rnd}.npz"
    with np.load(path) as npz:
        return _arrays(path), int(npz["num_examples"])


def test_all_sites_took_part(deployment: Deployment, finished_run: Path) -> None:
    # Prepare
    record = json.loads((finished_run / "run.json").read_text())
    text = json.dumps(record)
    # Assert: every site reported metrics and wrote its update in every round
    for site in SITES:
        assert f'"{site}"' in text
        for rnd in range(1, ROUNDS + 1):
            assert (deployment.root / "dumps" / site / f"round-{rnd}.npz").is_file()


@pytest.mark.parametrize("rnd", range(1, ROUNDS + 1))
def test_global_weights_equal_plain_fedavg(
    deployment: Deployment, finished_run: Path, rnd: int
) -> None:
    # Prepare: the reference FedAvg, computed here from the sites' own dumps
    updates = [_dump(deployment, site, rnd) for site in SITES]
    total = sum(n for _, n in updates)
    reference = [
        sum(arrs[i].astype(np.float64) * n for arrs, n in updates) / total
        for i in range(len(updates[0][0]))
    ]
    # SecAgg+ quantises each weighted update to steps of 2c/Q; the server divides the sum
    # by the sum of the quantised weights n/max_weight.
    step = 2 * CLIPPING / QUANTIZATION_RANGE
    atol = len(SITES) * step / (total / MAX_WEIGHT) * 1.01 + 1e-6
    # Execute
    global_arrays = _arrays(finished_run / "checkpoints" / f"round-{rnd}.npz")
    # Assert
    assert len(global_arrays) == len(reference)
    for got, want in zip(global_arrays, reference, strict=True):
        if np.issubdtype(got.dtype, np.integer):  # counters (e.g. batches tracked)
            assert np.allclose(got, want, atol=1)
            continue
        assert np.allclose(got.astype(np.float64), want, rtol=1e-5, atol=atol), np.abs(
            got - want
        ).max()


@pytest.mark.parametrize("rnd", range(1, ROUNDS + 1))
def test_server_received_only_masked_vectors(
    deployment: Deployment, finished_run: Path, rnd: int
) -> None:
    # Prepare
    path = finished_run / "secagg-debug" / f"round-{rnd}-masked.npz"
    with np.load(path) as npz:
        nodes = sorted({k.split("_")[0] for k in npz.files if k.startswith("node")})
        uploads = {n: _arrays(path, f"{n}_") for n in nodes}
    assert len(uploads) == len(SITES)
    # Execute / Assert: an upload never matches what the site's update looks like when
    # quantised in the clear (the form it would take without masks).
    for site in SITES:
        arrays, n = _dump(deployment, site, rnd)
        ratio = round(n / MAX_WEIGHT * QUANTIZATION_RANGE) / QUANTIZATION_RANGE
        flat = np.concatenate([a.ravel().astype(np.float64) for a in arrays])
        clear = (
            (np.clip(flat * ratio, -CLIPPING, CLIPPING) + CLIPPING)
            * QUANTIZATION_RANGE
            / (2 * CLIPPING)
        )
        for upload in uploads.values():
            masked = np.concatenate([a.ravel().astype(np.float64) for a in upload[1:]])
            assert masked.shape == clear.shape
            assert np.mean(np.abs(masked - clear) <= 2) < 0.01
            assert not np.allclose(masked, clear, atol=QUANTIZATION_RANGE / 100)


def test_unregistered_site_is_refused(deployment: Deployment) -> None:
    # Prepare: a kit for a site the running server never registered
    dep = deployment
    provision(
        _federation(deployment.root / "hospitals.toml", deployment.port, (*SITES, "site-d")),
        deployment.kits,
    )
    # Execute
    done = harness.run_cli(
        [*harness.site_start_args(str(dep.kits / "site-d"), str(dep.data[0]), "cpu",
                                  str(dep.root / "site-d-state")),
         "--runtime-port", str(harness.free_port()), "--max-restarts", "0",
         "--log-file", str(dep.root / "site-d.log")],
        deployment.root / "flwr-home",
    )  # fmt: skip
    # Assert
    assert done.returncode == 2
    assert "refused site 'site-d'" in done.stderr and "not registered" in done.stderr


def test_site_trusting_another_ca_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    # Prepare: a kit from another federation (its own CA), pointed at this server
    dep = deployment
    provision(_federation(tmp_path / "other.toml", deployment.port, ("site-a",)), tmp_path / "kits")
    # Execute
    done = harness.run_cli(
        [*harness.site_start_args(str(tmp_path / "kits" / "site-a"), str(dep.data[0]), "cpu",
                                  str(tmp_path / "state")),
         "--max-restarts", "0"],
        deployment.root / "flwr-home",
    )  # fmt: skip
    # Assert
    assert done.returncode == 2
    assert "does not trust" in done.stderr and "unable to get local issuer" in done.stderr


def test_connection_without_tls_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    # Execute: a plain-HTTP request, and a SuperNode with TLS switched off
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        urllib.request.urlopen(f"http://{deployment.address}/health", timeout=5)
    log_file = tmp_path / "insecure.log"
    proc = deployment.procs.start(
        [str(Path(harness.sys.executable).parent / "flower-supernode"), "--insecure",
         "--superlink", deployment.address, "--max-retries", "2",
         "--port", str(harness.free_port()), "--node-config", 'data-dir="/nonexistent"'],
        log_file, cli=False,
    )  # fmt: skip
    # Assert
    assert proc.wait(timeout=90) != 0
    text = log_file.read_text()
    assert "SuperNode ID" not in text and "Connection attempt failed" in text


def test_private_key_with_wrong_permissions_is_refused_before_connecting(
    deployment: Deployment, tmp_path: Path
) -> None:
    # Prepare
    site_kit = shutil.copytree(deployment.kits / "site-b", tmp_path / "site-b")
    (site_kit / "auth.key").chmod(0o644)
    server_kit = shutil.copytree(deployment.kits / "server", tmp_path / "server")
    (server_kit / "server.key").chmod(0o640)
    # Execute
    site = harness.run_cli(
        ["site", "start", "--kit", str(site_kit), "--data", str(deployment.data[1]),
         "--state-dir", str(tmp_path / "state")],
        deployment.root / "flwr-home",
    )  # fmt: skip
    server = harness.run_cli(
        ["server", "start", "--kit", str(server_kit), "--state-dir", str(tmp_path / "srv")],
        deployment.root / "flwr-home",
    )
    # Assert: refused with the fix, and nothing was started (no Flower state written)
    assert site.returncode == 2 and "chmod 600" in site.stderr and "mode 0644" in site.stderr
    assert server.returncode == 2 and "chmod 600" in server.stderr
    assert not (tmp_path / "state").exists() and not (tmp_path / "srv").exists()
