"""Flower's own `flwr run` on the project: a local SuperLink in simulation mode runs the apps."""

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from shared.process import flower_env, flower_executable
from simulations.synth import generate_sites
from tests.deployment.harness import copy_app, free_port

CONNECTION = """[superlink]
default = "medfleet-sim"

[superlink.medfleet-sim]
address = ":local:"
options.num-supernodes = 2
"""


def _stop_local_superlink(flwr_home: Path) -> None:
    """Stop, by PID, the SuperLink `flwr run` left running for this FLWR_HOME."""
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if str(flwr_home) in " ".join(proc.info["cmdline"] or []):
            for child in proc.children(recursive=True):
                os.kill(child.pid, signal.SIGKILL)
            os.kill(proc.pid, signal.SIGTERM)
            psutil.wait_procs([proc], timeout=10)


@pytest.mark.slow
def test_flwr_run_trains_the_sites_like_medfleet_sim(tmp_path: Path) -> None:
    # Prepare
    home, out = tmp_path / "flwr-home", tmp_path / "out"
    home.mkdir()
    (home / "config.toml").write_text(CONNECTION)
    data = generate_sites(tmp_path / "data", n_sites=2, seed=7, scale=0.2)[0].parent
    app = copy_app(tmp_path / "app")
    run_config = (
        f"sim-data-root='{data}' out-dir='{out}' num-server-rounds=2 min-sites=2 image-size=32"
    )
    command = [flower_executable("flwr"), "run", str(app), "medfleet-sim", "--stream"]

    # Execute: Flower gives its local SuperLink 15 s to start (a constant) and kills it past
    # that; on a loaded machine it can take longer, or a port picked free can be taken by
    # then (it exits with code 1): try again, on fresh ports
    try:
        for _ in range(3):
            env = flower_env(
                home,
                {
                    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
                    "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port()),
                    "FLWR_LOCAL_CONTROL_API_PORT": str(free_port()),
                },
            )
            done = subprocess.run(
                [*command, "--run-config", run_config],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if "Failed to start local SuperLink" not in done.stdout + done.stderr:
                break
            _stop_local_superlink(home)
    finally:
        _stop_local_superlink(home)

    # Assert
    log = home / "local-superlink" / "superlink.log"
    said = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + said
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["config"]["sim-data-root"] == str(data)
    assert len(record["rounds"]) == 2
    assert set(record["rounds"][-1]["evaluate"]["sites"]) == {"site-1", "site-2"}
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(home) in " ".join(p.info["cmdline"] or [])
    ]
