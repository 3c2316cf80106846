"""Submit a training run to the running SuperLink with the `flwr` CLI."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping
from pathlib import Path

from server.launcher import CONNECTION
from shared.errors import ConfigError
from shared.process import flower_env, flower_executable

__all__ = ["app_hash", "default_app_dir", "run_config_args", "submit_run"]

log = logging.getLogger("medfleet.server.submit")

Scalar = int | float | str | bool


def default_app_dir() -> Path:
    """The Flower app folder: the project root holding pyproject.toml with [tool.flwr.app]."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise ConfigError(f"no pyproject.toml next to the installed code in {root}; pass --app")
    return root


def app_hash(app_dir: Path) -> str:
    """Flower's FAB hash of the app folder: the SHA-256 of the bundle `flwr run` builds.

    Each site runs only apps whose hash its admin approved (`medfleet site approve`).
    """
    import hashlib

    from flwr.cli.build import build_fab_from_disk

    return hashlib.sha256(build_fab_from_disk(app_dir)).hexdigest()


def _toml_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if '"' in value:
        raise ConfigError(f"run-config value {value!r} must not contain double quotes")
    return f'"{value}"'


def run_config_args(config: Mapping[str, Scalar]) -> list[str]:
    """`--run-config` options for `flwr run`, one per key (values as TOML literals)."""
    args: list[str] = []
    for key, value in config.items():
        args += ["--run-config", f"{key}={_toml_value(value)}"]
    return args


def submit_run(
    app_dir: Path, config: Mapping[str, Scalar], flwr_home: Path, *, stream: bool = True
) -> int:
    """Run `flwr run APP medfleet --run-config ...` against the local SuperLink.

    With `stream`, the run's logs are shown and the call returns when the run ends.
    """
    command = [flower_executable("flwr"), "run", str(app_dir), CONNECTION]
    command += run_config_args(config)
    if stream:
        command.append("--stream")
    digest = app_hash(app_dir)
    print(
        f"app {digest} (FAB hash): each site runs it only once its admin has approved it "
        f"with `medfleet site approve {digest}`",
        flush=True,
    )
    log.info("submitting run: %s", " ".join(command[1:]))
    return subprocess.run(command, env=flower_env(flwr_home), check=False).returncode
