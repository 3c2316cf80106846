"""Submit a training run to the running SuperLink with the `flwr` CLI."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from server.launcher import CONNECTION
from shared.errors import ConfigError
from shared.process import flower_env, flower_executable

__all__ = [
    "app_hash",
    "default_app_dir",
    "follow_run",
    "run_config_args",
    "run_status",
    "submit_run",
]

log = logging.getLogger("medfleet.server.submit")

Scalar = int | float | str | bool

#: What `flwr run` prints once the SuperLink accepted the run.
_STARTED = re.compile(r"Successfully started run (\d+)")


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
    if not stream:
        return subprocess.run(command, env=flower_env(flwr_home), check=False).returncode
    code, run_id = _streamed(command, flower_env(flwr_home))
    if code == 0 and run_id is not None:
        follow_run(run_id, flwr_home)
    return code


def _streamed(command: Sequence[str], env: Mapping[str, str]) -> tuple[int, int | None]:
    """Run `command` with its output passed through; its exit code and the run's ID."""
    run_id = None
    with subprocess.Popen(
        list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace",
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if run_id is None and (started := _STARTED.search(line)):
                run_id = int(started[1])
    return proc.returncode, run_id


def run_status(run_id: int, flwr_home: Path, tries: int = 3) -> str | None:
    """Flower's status of run `run_id` (e.g. ``running``, ``finished:completed``), else None."""
    command = [flower_executable("flwr"), "ls", CONNECTION, "--run-id", str(run_id),
               "--format", "json"]  # fmt: skip
    for attempt in range(tries):
        done = subprocess.run(
            command, env=flower_env(flwr_home), capture_output=True, text=True, check=False
        )
        try:
            answer = json.loads(done.stdout[done.stdout.find("{") :])
            return str(answer["runs"][0]["status"])
        except (ValueError, KeyError, IndexError, TypeError):
            if attempt + 1 < tries:
                time.sleep(2.0)
    return None


def follow_run(run_id: int, flwr_home: Path, pause_s: float = 2.0) -> None:
    """Attach to the run's log stream again for as long as the run has not finished.

    `flwr run --stream` returns when the SuperLink ends the log stream, also when it ends
    it with an error while the run goes on (seen under load: its state database locked
    for a moment); `server run` would then report a running run as failed.
    """
    while (status := run_status(run_id, flwr_home)) is not None:
        if status.startswith("finished"):
            return
        log.warning("the run's log stream ended while run %d is %s: following its log again "
                    "(from its start)", run_id, status)  # fmt: skip
        command = [flower_executable("flwr"), "log", str(run_id), CONNECTION, "--stream"]
        subprocess.run(command, env=flower_env(flwr_home), check=False)
        time.sleep(pause_s)
    log.warning("could not read the status of run %d from the SuperLink", run_id)
