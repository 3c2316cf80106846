"""`server run` names the app's FAB hash, the one each site must have approved."""

import hashlib
import subprocess
import sys
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

    def streamed(cmd: list[str], env: object) -> tuple[int, None]:
        calls.append(cmd)
        return 0, None

    monkeypatch.setattr(submit, "_streamed", streamed)

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


#: A stand-in for Flower's CLI: `run` prints what Flower prints and ends its stream while
#: the run is still running (as when the SuperLink's stream ends with an error); `ls`
#: answers the run's status from a file; `log` streams the rest and finishes the run.
_FAKE_FLWR = """\
import json, os, sys
from pathlib import Path
state = Path(os.environ["FAKE_FLWR_STATE"])
calls = state.with_suffix(".calls")
with calls.open("a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "run":
    print("Successfully started run 4242")
    print("round 1 of 3")
    state.write_text("running")
elif sys.argv[1] == "ls":
    print(json.dumps({"success": True, "runs": [{"run-id": 4242, "status": state.read_text()}]}))
elif sys.argv[1] == "log":
    print("round 2 of 3")
    print("round 3 of 3")
    state.write_text("finished:completed")
"""


def test_a_log_stream_that_ends_mid_run_is_followed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    script = tmp_path / "flwr"
    script.write_text(f"#!{sys.executable}\n{_FAKE_FLWR}")
    script.chmod(0o755)
    monkeypatch.setattr(submit, "flower_executable", lambda name: str(script))
    monkeypatch.setenv("FAKE_FLWR_STATE", str(tmp_path / "state"))
    app = submit.default_app_dir()

    # Execute
    code = submit.submit_run(app, {"num-server-rounds": 3}, tmp_path / "home")

    # Assert: every round's log shown, the run followed to its end, then nothing more
    out = capfd.readouterr().out
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("round")] == [
        "round 1 of 3", "round 2 of 3", "round 3 of 3",
    ]  # fmt: skip
    calls = [c.split()[:2] for c in (tmp_path / "state.calls").read_text().splitlines()]
    assert calls == [["run", str(app)], ["ls", "medfleet"], ["log", "4242"], ["ls", "medfleet"]]


def test_a_finished_run_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: the run had finished when its stream ended
    monkeypatch.setattr(submit, "_streamed", lambda cmd, env: (0, 7))
    asked: list[int] = []
    followed: list[list[str]] = []

    def status(run_id: int, home: Path) -> str:
        asked.append(run_id)
        return "finished:failed"

    monkeypatch.setattr(submit, "run_status", status)
    monkeypatch.setattr(submit.subprocess, "run", lambda cmd, **_: followed.extend([cmd]))

    # Execute
    code = submit.submit_run(submit.default_app_dir(), {"num-server-rounds": 1}, tmp_path)

    # Assert
    assert (code, asked, followed) == (0, [7], [])
