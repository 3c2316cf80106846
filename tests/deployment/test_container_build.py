"""How the container test builds: the host pip's wheel folder and CA bundle, mounted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deployment import containers, harness
from tests.deployment.containers import BASE_IMAGE, BUILD_CA, BUILD_WHEELS


def test_a_wheel_folder_with_torch_and_a_ca_bundle_are_mounted_into_the_build(
    tmp_path: Path,
) -> None:
    # Prepare: a host whose pip finds links in a folder holding the CPU torch wheel
    wheels, cert = tmp_path / "wheels", tmp_path / "ca.crt"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").touch()
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = {"find-links": str(wheels), "cert": str(cert), "index-url": "https://idx/simple"}
    # Execute
    options = containers.build_options(settings)
    # Assert: mounted read-only (never copied), named by build args, torch's index replaced
    assert options == [
        f"--build-arg=BASE_IMAGE={BASE_IMAGE}",
        "--network=host",
        f"--volume={wheels}:{BUILD_WHEELS}:ro",
        f"--build-arg=WHEELS={BUILD_WHEELS}",
        "--build-arg=TORCH_INDEX=https://idx/simple",
        f"--volume={cert}:{BUILD_CA}:ro",
        f"--build-arg=CA_BUNDLE={BUILD_CA}",
    ]


def test_without_local_wheels_or_bundle_the_dockerfile_defaults_apply(tmp_path: Path) -> None:
    # Prepare: a wheel folder without torch, a bundle that does not exist
    settings = {"find-links": str(tmp_path), "cert": str(tmp_path / "missing.crt")}
    # Execute / Assert: the CPU torch index of the Dockerfiles stays
    assert containers.build_options(settings) == [
        f"--build-arg=BASE_IMAGE={BASE_IMAGE}",
        "--network=host",
    ]


def test_the_debian_mirror_is_read_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    # Prepare
    deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    one_line = "deb http://other.example/debian bookworm main\n"
    # Execute / Assert
    assert containers.mirror_of(deb822) == "http://mirror.example/debian"
    assert containers.mirror_of(one_line) == "http://other.example/debian"
    assert containers.mirror_of("deb http://security.example/debian-security bookworm main") is None


def test_without_podman_the_reason_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: podman-compose is missing
    monkeypatch.setattr(containers.shutil, "which", lambda t: None if "compose" in t else t)
    # Execute
    reason = containers.unavailable()
    # Assert: it names what is missing and the command that installs all three
    assert reason is not None and reason.startswith("podman-compose not installed")
    assert "apt-get install podman podman-compose mmdebstrap" in reason


def test_the_readme_gives_the_commands_the_container_test_runs() -> None:
    # Prepare
    from tests.deployment.test_containers import COMPOSE, RUN, SCALE, SYNC, UP

    readme = (harness.REPO / "README.md").read_text()
    section = readme[readme.index("### Deploy with containers") :]
    compose = "podman-compose -p medfleet-demo -f docker/compose.yaml"
    pacs = f"podman-compose -p medfleet-demo {COMPOSE}"
    # Assert: the same compose calls (the plain demo's and, as the test runs them, those
    # with a PACS per site), data scale, approvals, owners, the Orthanc image's build
    owners = "docker/demo/kits/server docker/demo/kits/site-? docker/demo/state"
    commands = [
        f"{compose} {UP}",
        f"{compose} {RUN}",
        f"{pacs} {UP}",
        f"{pacs} {SYNC.format(site='$site')}",
        f"{pacs} {RUN}",
        "podman build -f docker/Dockerfile.orthanc --ignorefile docker/Dockerfile.orthanc.docker",
        "mkdir -p docker/demo/state/site-{a,b,c}/pacs-cache",
        f"--scale {SCALE} --out docker/demo/data",
        "medfleet site approve $HASH --state-dir docker/demo/state/$site",
        f"chown -R 10001:10001 {owners}",
    ]
    for command in commands:
        assert command in section, command
