"""`server run` names the app's FAB hash, the one each site must have approved."""

import hashlib
import subprocess
from pathlib import Path

import pytest

from server import submit


def test_the_printed_hash_is_the_sha256_of_the_bundle_flwr_run_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: `flwr build` writes the bundle to a file; its SHA-256 is Flower's FAB hash
    app = submit.default_app_dir()
    built = subprocess.run(
        [submit.flower_executable("flwr"), "build", "--app", str(app)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    fabs = list(tmp_path.glob("*.fab")) or list(app.glob("*.fab"))
    if built.returncode != 0 or not fabs:
        pytest.skip(f"flwr build did not write a FAB here: {built.stdout[-300:]}")
    expected = hashlib.sha256(fabs[0].read_bytes()).hexdigest()
    for fab in app.glob("*.fab"):
        fab.unlink()
    calls: list[list[str]] = []
    monkeypatch.setattr(
        submit.subprocess,
        "run",
        lambda cmd, **_: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0),
    )

    # Execute
    code = submit.submit_run(app, {"num-server-rounds": 1}, tmp_path)

    # Assert
    assert code == 0 and calls and calls[0][1] == "run"
    assert submit.app_hash(app) == expected
    assert f"app {expected} (FAB hash)" in capsys.readouterr().out


def test_server_app_hash_prints_the_hash_server_run_submits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from shared.cli import main

    assert main(["server", "app-hash"]) == 0
    assert capsys.readouterr().out.strip() == submit.app_hash(submit.default_app_dir())
