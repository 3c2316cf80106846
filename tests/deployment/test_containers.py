"""The images really build and the compose federation really trains, with podman.

A copy of the checkout gets the README's demo layout ("Deploy with containers"): kits and
synthetic sites under docker/demo/, inside the build context. The three images (server,
site, Orthanc) are built from it (from a Debian base bootstrapped here when missing;
layers are cached between runs), every layer is searched for what must never be in an
image, and the compose file's server and three sites train 2 rounds over TLS + site
authentication + SecAgg+, with the PACS override (docker/compose.pacs.yaml): each site's
synthetic studies are uploaded into its own Orthanc, and the site trains on what
`medfleet site sync` brought from it. Every container is removed by id at the end, also
on failure. Durations are printed (pytest -rP).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from shared.tasks import TASKS
from tests.deployment import containers, harness
from tests.deployment.containers import ORTHANC_IMAGE, SERVER_IMAGE, SITE_IMAGE, Podman
from tests.deployment.image_secrets import finding

pytestmark = pytest.mark.slow

SITES = ("site-a", "site-b", "site-c")
ROUNDS = 2  # as in RUN
SCALE = 0.15  # synthetic sites of 24 / 16 / 10 images
UID = "10001"  # the images' medfleet user
ORTHANC_UID = "10002"
COMPOSE = "-f docker/compose.yaml -f docker/compose.pacs.yaml"
PACS = {site: f"orthanc-{site[-1]}" for site in SITES}  # each site's own Orthanc service
DATA = {site: f"site-{i}" for i, site in enumerate(SITES, 1)}  # its synthetic studies


@dataclass
class Images:
    """Both images, built from `context`, and how long each phase took."""

    podman: Podman
    context: Path
    seconds: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    reason = containers.unavailable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("containers")
    podman = Podman(work)
    context = containers.copy_checkout(work / "medfleet")
    _demo_layout(context)  # kits and DICOM files in the build context, as the README has them
    built = Images(podman, context)
    started = time.monotonic()
    if not podman.exists(containers.BASE_IMAGE):
        containers.bootstrap_base(podman, work, containers.debian_mirror())
    built.seconds["base"] = time.monotonic() - started
    options = containers.build_options()
    for name, dockerfile, tag in (
        ("server", "Dockerfile.server", SERVER_IMAGE),
        ("site", "Dockerfile.site", SITE_IMAGE),
        ("orthanc", "Dockerfile.orthanc", ORTHANC_IMAGE),
    ):
        started = time.monotonic()
        containers.build(podman, context, dockerfile, tag, options)
        built.seconds[f"build {name}"] = time.monotonic() - started
    return built


def _demo_layout(root: Path) -> None:
    """The README's commands before the images are used: provision, synthesise, mkdir."""
    demo = root / "docker" / "demo"
    _medfleet(
        root,
        "provision",
        "--federation",
        "docker/demo-federation.toml",
        "--out",
        str(demo / "kits"),
    )
    _medfleet(root, "synth", "--sites", "3", "--scale", str(SCALE), "--out", str(demo / "data"))
    for name in ("server", *SITES):
        (demo / "state" / name).mkdir(parents=True)
    for site in SITES:
        (demo / "state" / site / "pacs-cache").mkdir()  # the PACS override's /data


def _medfleet(root: Path, *args: str) -> None:
    """`medfleet ARGS` on the host, in the checkout copy."""
    env = {**harness.flower_env(root / "home"), "PYTHONPATH": str(harness.REPO)}
    done = subprocess.run(harness.medfleet(args), cwd=root, capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_images_report_their_sizes_and_run_as_the_medfleet_user(images: Images) -> None:
    for image, owner in ((SERVER_IMAGE, UID), (SITE_IMAGE, UID), (ORTHANC_IMAGE, ORTHANC_UID)):
        # Execute
        user = images.podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout
        uid = images.podman("run", "--rm", "--network=none", "--entrypoint=id", image, "-u")
        # Assert
        assert user.strip() == f"{owner}:{owner}"
        assert uid.stdout.strip() == owner
        print(f"{image}: {images.podman.size_mb(image):.0f} MB")
    print(", ".join(f"{phase} {s:.0f} s" for phase, s in images.seconds.items()))


@pytest.mark.parametrize(("image", "least"), [(SERVER_IMAGE, 10_000), (SITE_IMAGE, 10_000),
                                             (ORTHANC_IMAGE, 2_000)])  # fmt: skip
def test_no_layer_holds_a_kit_key_certificate_dicom_file_or_run(
    images: Images, image: str, least: int
) -> None:
    # Prepare: the build context held kits, keys and DICOM files (docker/demo/), and the
    # search finds each of them by its content alone, under an innocent name
    demo = images.context / "docker" / "demo"
    planted = [p for p in demo.rglob("*") if p.is_file() and p.suffix in (".key", ".pem", ".dcm")]
    assert {p.suffix for p in planted} == {".key", ".pem", ".dcm"}
    assert all(finding(f"/opt/medfleet/shared/x{i}.py", p) for i, p in enumerate(planted))
    # Execute: every file of every layer, also those a later layer deleted
    layers = containers.layer_dirs(images.podman, image)
    found, searched = [], 0
    for layer in layers:
        for image_path, disk in containers.layer_files(layer):
            searched += 1
            reason = finding(image_path, disk)
            if reason:
                found.append(f"{image_path}: {reason}")
    # Assert
    assert searched > least, f"only {searched} files in {len(layers)} layers"
    assert not found, found[:20]


_IMPORT_TASKS = """
import importlib, importlib.util, json
from shared.tasks import TASKS
import client.client_app
classes = {}
for name, target in TASKS.items():
    module, cls = target.split(":")
    classes[name] = getattr(importlib.import_module(module), cls).__name__
print(json.dumps({"tasks": classes, "absent": [p for p in ("simulations", "server")
                                               if importlib.util.find_spec(p) is None]}))
"""


def test_every_registered_task_imports_in_the_site_image(images: Images) -> None:
    # Execute: no network, no code but the image's
    done = images.podman(
        "run",
        "--rm",
        "--network=none",
        "--entrypoint=python3",
        SITE_IMAGE,
        "-c",
        _IMPORT_TASKS,
        timeout=300,
    )
    # Assert: the tasks this checkout registers, each its registered class; no server or
    # simulation code is installed at a site
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["tasks"] == {name: target.split(":")[1] for name, target in TASKS.items()}
    assert seen["absent"] == ["simulations", "server"]


# The README's commands ("Deploy with containers"), after `podman-compose -p P COMPOSE`.
UP = "up -d"
SYNC = "exec -T {site} medfleet site sync --pacs-config /etc/medfleet/pacs.toml"
RUN = (
    "exec -T server medfleet server run --kit /kits/server --state-dir /var/lib/medfleet "
    "--task classification --rounds 2 --out-dir /var/lib/medfleet/runs/containers "
    "--set local-epochs=1 --set image-size=32 --set batch-size=8"
)


@dataclass
class Federation:
    """The compose project: its containers by service, the run's output, phase durations."""

    images: Images
    port: int
    pacs_ports: dict[str, int] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    uploaded: dict[str, int] = field(default_factory=dict)
    syncs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    run: subprocess.CompletedProcess[str] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return f"medfleet-test-{self.port}"

    @property
    def state(self) -> Path:
        return self.images.context / "docker" / "demo" / "state"

    def compose(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`podman-compose -p PROJECT COMPOSE COMMAND` in the checkout copy."""
        ports = {f"MEDFLEET_PACS_PORT_{s[-1].upper()}": str(p) for s, p in self.pacs_ports.items()}
        return self.images.podman(
            "-p", self.project, *COMPOSE.split(), *command.split(), tool="podman-compose",
            cwd=self.images.context, env={"MEDFLEET_PORT": str(self.port), **ports},
            timeout=timeout, check=False,
        )  # fmt: skip

    def containers(self, *filters: str) -> list[str]:
        """Ids of the project's containers (running or not) matching the label filters."""
        labels = [f"--filter=label={f}" for f in (f"io.podman.compose.project={self.project}",
                                                   *filters)]  # fmt: skip
        return self.images.podman("ps", "--all", "--quiet", *labels).stdout.split()


@pytest.fixture(scope="module")
def federation(images: Images) -> Iterator[Federation]:
    """The README's commands: approve the server's app at each site, give the kits and state
    to the images' user, `up -d`, fill each site's Orthanc and `exec` its sync, `exec` a run."""
    fed, podman = Federation(images, harness.free_port()), images.podman
    fed.pacs_ports = {site: harness.free_port() for site in SITES}
    try:
        started = time.monotonic()
        done = podman("run", "--rm", "--network=none", SERVER_IMAGE, "server", "app-hash")
        for site in SITES:
            _medfleet(images.context, "site", "approve", done.stdout.split()[-1], "--state-dir",
                      f"docker/demo/state/{site}")  # fmt: skip
        demo = images.context / "docker" / "demo"
        owned = [demo / "kits" / name for name in ("server", *SITES)] + [demo / "state"]
        subprocess.run(["chown", "-R", f"{UID}:{UID}", *map(str, owned)], check=True, timeout=60)
        fed.seconds["approve"] = time.monotonic() - started
        started = time.monotonic()
        up = fed.compose(UP)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        for service in ("server", *SITES, *PACS.values()):
            (fed.ids[service],) = fed.containers(f"com.docker.compose.service={service}")
        fed.seconds["up"] = time.monotonic() - started
        started = time.monotonic()
        with ThreadPoolExecutor(len(SITES)) as pool:  # each site: upload, then sync
            synced = pool.map(lambda site: _load_and_sync(fed, site), SITES)
            fed.syncs = dict(zip(SITES, synced, strict=True))
        fed.seconds["upload into each Orthanc + site sync"] = time.monotonic() - started
        started = time.monotonic()
        _wait_all_connected(podman, fed.ids["server"])
        fed.seconds["then until every site is connected"] = time.monotonic() - started
        started = time.monotonic()
        fed.run = fed.compose(RUN, timeout=900)
        fed.seconds["2-round run"] = time.monotonic() - started
        yield fed
    finally:
        leftover = fed.containers()
        if leftover:
            podman("rm", "--force", "--volumes", "--time=0", *leftover, timeout=120, check=False)
        for network in ("federation", "pacs-a", "pacs-b", "pacs-c"):
            podman("network", "rm", "--force", f"{fed.project}_{network}", check=False)
    assert not fed.containers(), "containers left behind"


def _load_and_sync(fed: Federation, site: str) -> subprocess.CompletedProcess[str]:
    """Upload the site's synthetic studies into its Orthanc (REST API), then `site sync`."""
    data = fed.images.context / "docker" / "demo" / "data" / DATA[site]
    url = f"http://127.0.0.1:{fed.pacs_ports[site]}"
    with requests.Session() as session:
        deadline = time.monotonic() + 120
        while True:
            try:
                if session.get(f"{url}/system", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"{PACS[site]} did not answer"
            time.sleep(1)
        uploaded = 0
        for path in sorted(data.rglob("*.dcm")):
            reply = session.post(f"{url}/instances", data=path.read_bytes(), timeout=30)
            reply.raise_for_status()
            uploaded += reply.json()["Status"] == "Success"
        fed.uploaded[site] = uploaded
    return fed.compose(SYNC.format(site=site), timeout=300)


def _wait_all_connected(podman: Podman, server: str, timeout: float = 240) -> None:
    """Until the server's status line (every 15 s) lists every site as connected."""
    deadline, pattern = time.monotonic() + timeout, f"sites connected: {', '.join(SITES)};"
    while time.monotonic() < deadline:
        logs = podman("logs", server, check=False)
        if pattern in logs.stdout + logs.stderr:
            return
        time.sleep(2)
    raise AssertionError(f"not every site connected:\n{(logs.stdout + logs.stderr)[-3000:]}")


def test_each_site_synced_every_study_of_its_own_orthanc(federation: Federation) -> None:
    # Prepare: the synthetic studies of each site, counted here
    data = federation.images.context / "docker" / "demo" / "data"
    files = {site: len(list((data / DATA[site]).rglob("*.dcm"))) for site in SITES}
    # Execute: what each site's PACS cache (its /data) holds on its state volume
    cached = {
        site: len([p for p in (federation.state / site / "pacs-cache").rglob("*.dcm")
                   if ".medfleet-pacs" not in p.parts])
        for site in SITES
    }  # fmt: skip
    # Assert: every file went into the site's Orthanc and came back by sync, whole
    assert federation.uploaded == files
    for site, done in federation.syncs.items():
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert f"({files[site]} instances" in done.stdout, done.stdout
    assert cached == files


def test_compose_federation_trains_two_secure_rounds(federation: Federation) -> None:
    # Prepare: what each site's Orthanc accepted (the sites train on what they synced)
    files = federation.uploaded
    out = federation.state / "server" / "runs" / "containers"
    # Execute: the run record on the server's mounted state volume
    record = json.loads((out / "run.json").read_text())
    print(", ".join(f"{phase} {s:.0f} s" for phase, s in federation.seconds.items()))
    # Assert: completed under SecAgg+, both rounds with every site's update and scores
    assert federation.run is not None and federation.run.returncode == 0, federation.run
    assert record["status"] == "completed", record.get("error")
    assert record["config"]["secagg"] is True
    assert [entry["round"] for entry in record["rounds"]] == list(range(1, ROUNDS + 1))
    for entry in record["rounds"]:
        assert {s: m["data_files"] for s, m in entry["fit"]["sites"].items()} == files
        assert set(entry["evaluate"]["sites"]) == set(SITES)
    assert (out / "global_model.pt").is_file()


def test_sites_reach_the_server_over_tls_with_the_federation_ca_and_registered_keys(
    federation: Federation,
) -> None:
    # Prepare
    kits = federation.images.context / "docker" / "demo" / "kits"
    trusted = ssl.create_default_context(cafile=str(kits / "server" / "ca.pem"))
    # Execute: the published port, as the sites see it (the certificate names `server`)
    with (
        socket.create_connection(("127.0.0.1", federation.port), timeout=10) as sock,
        trusted.wrap_socket(sock, server_hostname="server") as tls,
    ):
        names = [value for kind, value in tls.getpeercert()["subjectAltName"] if kind == "DNS"]
    # Assert: the federation's certificate, unknown to the public trust store; the server
    # registered exactly the kit's site keys and knows each site's node
    assert "server" in names
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", federation.port), timeout=10) as sock,
    ):
        ssl.create_default_context().wrap_socket(sock, server_hostname="server")
    registered = json.loads((federation.state / "server" / "sites.json").read_text())
    assert set(registered) == set(SITES)


def test_containers_are_healthy_and_restart_unless_stopped(federation: Federation) -> None:
    podman, ids = federation.images.podman, federation.ids
    # Execute: the compose files' health checks (podman schedules none without systemd), all
    # of the server and sites at once, with a site's check against a runtime port its
    # SuperNode does not use; then the Orthancs' (on 2 cores, the sites' checks have 60 s)
    checks = {s: ("healthcheck", "run", cid) for s, cid in ids.items() if s not in PACS.values()}
    sick = ("exec", ids["site-a"], "medfleet", "site", "health", "--kit", "/kit", "--runtime-port")
    checks["sick"] = (*sick, "9")
    done: dict[str, subprocess.CompletedProcess[str]] = {}
    for batch in (checks, {s: ("healthcheck", "run", ids[s]) for s in PACS.values()}):
        with ThreadPoolExecutor(len(batch)) as pool:
            replies = pool.map(lambda args: podman(*args, check=False, timeout=120), batch.values())
            done.update(zip(batch, replies, strict=True))
    # Assert: healthy, restarted unless stopped; the sick check fails and says why
    for service, cid in ids.items():
        assert done[service].returncode == 0, f"{service}: {done[service].stdout}"
        policy = podman("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", cid)
        assert policy.stdout.strip() == "unless-stopped"
    assert done["sick"].returncode == 1 and "runtime port 9" in done["sick"].stdout
