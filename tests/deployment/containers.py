"""Podman for the container tests: a local Debian base, image builds, layer contents.

No container registry is reachable from CI, so the Dockerfiles' public base image is
replaced by a Debian bookworm bootstrapped from Debian's packages (mmdebstrap), and pip
in the build gets the host's own pip settings: its wheel folder (the CPU torch wheel)
and CA bundle are mounted into the build, never copied into an image.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.deployment import harness

BASE_IMAGE = "localhost/medfleet-base:bookworm"
SERVER_IMAGE = "localhost/medfleet-server:latest"
SITE_IMAGE = "localhost/medfleet-site:latest"
ORTHANC_IMAGE = "localhost/medfleet-orthanc:latest"
TOOLS = ("podman", "podman-compose", "mmdebstrap")
# Debian's podman and runc cannot set the default rlimits in this CI's sandbox ("error
# setting rlimit type 7: operation not permitted"); events go to a file (no journald).
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n[engine]\nevents_logger = "file"\n'
# Mount points of the host's pip settings inside a build (RUN steps only, not the image).
BUILD_WHEELS = "/run/medfleet-build/wheels"
BUILD_CA = "/run/medfleet-build/ca.crt"


def unavailable() -> str | None:
    """Why the container tests cannot run here (None when they can)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (
            f"{', '.join(missing)} not installed: `sudo apt-get install podman podman-compose "
            "mmdebstrap` (make test's system-deps does this when run as root)"
        )
    if os.geteuid() != 0:
        return "the container tests need rootful podman: run them as root"
    return None


class Podman:
    """`podman` and `podman-compose` with this test's containers.conf."""

    def __init__(self, conf_dir: Path) -> None:
        conf = conf_dir / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(
        self,
        *args: str,
        timeout: float = 120,
        check: bool = True,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        tool: str = "podman",
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [tool, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env={**self.env, **(env or {})},
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} {args[0]} failed:\n{(done.stdout + done.stderr)[-3000:]}")
        return done

    def exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0

    def size_mb(self, image: str) -> float:
        return int(self("image", "inspect", "--format", "{{.Size}}", image).stdout) / 1e6


def bootstrap_base(podman: Podman, work: Path, mirror: str) -> None:
    """Import a minimal Debian bookworm with python3 as `BASE_IMAGE` (about 30-100 s)."""
    tar = work / "bookworm.tar"
    packages = "--include=python3,python3-venv,ca-certificates"
    done = subprocess.run(
        ["mmdebstrap", "--variant=minbase", packages, "--quiet", "bookworm", str(tar), mirror],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"mmdebstrap failed:\n{done.stderr[-3000:]}"
    podman("import", str(tar), BASE_IMAGE, timeout=300)
    tar.unlink()


def debian_mirror() -> str:
    """The Debian mirror apt on this host uses (deb.debian.org when none is found)."""
    for source in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        mirror = mirror_of(source.read_text(errors="replace")) if source.is_file() else None
        if mirror:
            return mirror
    return "http://deb.debian.org/debian"


def mirror_of(sources: str) -> str | None:
    """The first Debian (not security) mirror of an apt sources file, one-line or deb822."""
    for line in sources.splitlines():
        words = line.split()
        if words[:1] == ["URIs:"] or (words[:1] == ["deb"] and len(words) >= 4):
            uri = words[1] if words[0] == "URIs:" else words[-3]
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return None


def _pip_settings() -> dict[str, str]:
    """The host pip's effective settings (`pip config list`, environment variables win)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    )
    settings: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        settings[key.split(".", 1)[-1]] = value.strip("'\"")
    for key in ("find-links", "cert", "index-url"):
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env:
            settings[key] = env
    return settings


def build_options(settings: dict[str, str] | None = None) -> list[str]:
    """`podman build` options that give pip in the build what the host's pip has.

    A local wheel folder holding torch (find-links) is mounted and searched, with the
    host's package index in place of the CPU torch index; the host's CA bundle is mounted
    for pip (a TLS-inspecting proxy). Without either, the Dockerfiles' defaults apply.
    """
    settings = _pip_settings() if settings is None else settings
    options = [f"--build-arg=BASE_IMAGE={BASE_IMAGE}", "--network=host"]
    links = settings.get("find-links", "").split()
    wheels = Path(links[0]) if links else None
    if wheels is not None and wheels.is_dir() and any(wheels.glob("torch-*.whl")):
        index = settings.get("index-url", "https://pypi.org/simple").split()[0]
        options += [
            f"--volume={wheels}:{BUILD_WHEELS}:ro",
            f"--build-arg=WHEELS={BUILD_WHEELS}",
            f"--build-arg=TORCH_INDEX={index}",
        ]
    cert = Path(settings.get("cert", ""))
    if settings.get("cert") and cert.is_file():
        options += [f"--volume={cert}:{BUILD_CA}:ro", f"--build-arg=CA_BUNDLE={BUILD_CA}"]
    return options


def build(podman: Podman, context: Path, dockerfile: str, tag: str, options: Sequence[str]) -> None:
    """`podman build` of docker/DOCKERFILE in `context` with its own ignore file."""
    podman(
        "build",
        *options,
        f"--ignorefile=docker/{dockerfile}.dockerignore",
        f"--file=docker/{dockerfile}",
        f"--tag={tag}",
        ".",
        cwd=context,
        timeout=1800,
    )


def copy_checkout(dest: Path) -> Path:
    """The checkout's files as a fresh clone has them (plus new files not yet committed)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=harness.REPO,
            capture_output=True,
            check=True,
            timeout=60,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        src = harness.REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def layer_dirs(podman: Podman, image: str) -> list[Path]:
    """The folder of each of the image's layers in podman's overlay storage, top first."""
    info = podman("info", "--format", "{{.Store.GraphDriverName}} {{.Store.GraphRoot}}").stdout
    driver, root = info.split()
    assert driver == "overlay", f"layer inspection expects podman's overlay storage, not {driver}"
    store = Path(root)
    parents = {e["id"]: e.get("parent", "") for e in _json(store / "overlay-layers/layers.json")}
    image_id = podman("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    images = {e["id"]: e["layer"] for e in _json(store / "overlay-images/images.json")}
    layer, dirs = images[image_id], []
    while layer:
        dirs.append(store / "overlay" / layer / "diff")
        layer = parents[layer]
    return dirs


def _json(path: Path) -> list[dict[str, str]]:
    import json

    return list(json.loads(path.read_text()))


def layer_files(layer: Path) -> Iterator[tuple[str, Path]]:
    """(path in the image, path on disk) of every regular file one layer adds or changes."""
    for folder, _, names in os.walk(layer):
        for name in names:
            path = Path(folder) / name
            if stat.S_ISREG(path.lstat().st_mode):
                yield "/" + str(path.relative_to(layer)), path
