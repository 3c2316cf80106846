"""The approval store and the FAB hash it keys on (Flower's own hash of the app)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from client.approval import APPROVALS_NAME, AppBundle, ApprovalStore, fab_hash, load_app
from shared.cli import main
from shared.errors import ConfigError
from tests.deployment.harness import copy_app

FLWR = Path(sys.executable).parent / "flwr"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's Flower app, as the server submits it."""
    return copy_app(tmp_path_factory.mktemp("app") / "medfleet")


@pytest.fixture(scope="module")
def built_fab(app: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FAB `flwr build` writes for the app (named publisher.name.version.hash8.fab)."""
    out = tmp_path_factory.mktemp("fab")
    env = {**os.environ, "FLWR_HOME": str(out / "home"), "FLWR_TELEMETRY_ENABLED": "0"}
    done = subprocess.run(
        [str(FLWR), "build", "--app", str(app)], cwd=out, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (fab,) = out.glob("*.fab")
    return fab


def test_folder_hash_is_the_hash_flwr_build_gives(app: Path, built_fab: Path) -> None:
    # Execute
    bundle, source = load_app(str(app))
    # Assert: sha256 of `flwr build`'s file, whose name carries the hash's first 8 digits
    assert bundle.hash == hashlib.sha256(built_fab.read_bytes()).hexdigest()
    assert built_fab.name.split(".")[-2] == bundle.hash[:8]
    assert source == f"folder {app.resolve()}"


def test_fab_file_gives_its_hash_name_version_and_files(app: Path, built_fab: Path) -> None:
    bundle, source = load_app(str(built_fab))
    assert bundle.hash == fab_hash(built_fab.read_bytes())
    assert (bundle.publisher, bundle.name, bundle.version) == ("medfleet", "medfleet", "0.1.0")
    assert bundle.label == "medfleet/medfleet 0.1.0"
    assert "client/client_app.py" in bundle.files and "pyproject.toml" in bundle.files
    assert source.startswith("file ")


def test_one_changed_line_changes_the_hash(app: Path, tmp_path: Path) -> None:
    # Prepare
    changed = copy_app(tmp_path / "medfleet")
    module = changed / "client" / "client_app.py"
    module.write_text(module.read_text() + "# one more line\n")
    # Execute / Assert
    assert load_app(str(changed))[0].hash != load_app(str(app))[0].hash


def test_hash_argument_and_bad_arguments(tmp_path: Path) -> None:
    digest = "AB" * 32
    bundle, source = load_app(digest)
    assert (bundle.hash, bundle.label, source) == (digest.lower(), "(unknown app)", "hash")
    with pytest.raises(ConfigError, match="neither a FAB file"):
        load_app("abc123")
    (tmp_path / "x.fab").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a Flower app bundle"):
        load_app(str(tmp_path / "x.fab"))


def _bundle(i: int) -> AppBundle:
    return AppBundle(hash=f"{i:064x}", name=f"app{i}", version="1.0", publisher="p")


def test_store_approves_lists_and_revokes(tmp_path: Path) -> None:
    # Prepare
    store = ApprovalStore(tmp_path / "state")
    assert store.apps() == {}
    # Execute
    first = store.approve(_bundle(1), "folder /x")
    store.approve(_bundle(2), "hash")
    # Assert: a fresh reader sees both, with who, when and from what
    apps = ApprovalStore(tmp_path / "state").apps()
    assert set(apps) == {f"{1:064x}", f"{2:064x}"}
    assert apps[first.hash] == first and first.source == "folder /x" and "@" in first.approved_by
    assert store.is_approved(first.hash) and not store.is_approved(f"{3:064x}")
    assert oct((tmp_path / "state" / APPROVALS_NAME).stat().st_mode & 0o777) == "0o600"
    # Revoke by full hash, then by unique prefix; unknown and too short are refused
    assert store.revoke(first.hash) == first
    with pytest.raises(ConfigError, match="no approved app"):
        store.revoke(first.hash)
    with pytest.raises(ConfigError, match="no approved app"):
        store.revoke("0000")  # prefixes need 8 digits
    assert store.revoke(f"{2:064x}"[:60]).hash == f"{2:064x}"
    assert store.apps() == {}


def test_ambiguous_prefix_is_refused(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    store.approve(_bundle(1), "hash")
    store.approve(_bundle(2), "hash")
    with pytest.raises(ConfigError, match="2 approved apps match"):
        store.revoke("0" * 12)


def test_failed_write_leaves_the_old_store_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    store = ApprovalStore(tmp_path)
    store.approve(_bundle(1), "hash")
    before = store.path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    # Execute
    with pytest.raises(OSError, match="disk full"):
        store.approve(_bundle(2), "hash")
    # Assert
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "approved-apps.json",
        "approved-apps.lock",
    ]


def test_concurrent_approvals_are_all_kept(tmp_path: Path) -> None:
    # Prepare: two admins (threads with their own file descriptors) approving at once
    store = ApprovalStore(tmp_path)

    def approve(start: int) -> None:
        for i in range(start, start + 15):
            ApprovalStore(tmp_path).approve(_bundle(i), "hash")

    threads = [threading.Thread(target=approve, args=(s,)) for s in (0, 100)]
    # Execute
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Assert: no lost update
    assert len(store.apps()) == 30


def test_damaged_store_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / APPROVALS_NAME).write_text("{not json")
    with pytest.raises(ConfigError, match="damaged.*medfleet site approve"):
        ApprovalStore(tmp_path).apps()


def test_cli_approve_apps_revoke(
    app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    state = tmp_path / "state"
    expected = load_app(str(app))[0].hash
    # Execute / Assert: --show approves nothing
    assert main(["site", "approve", str(app), "--show", "--state-dir", str(state)]) == 0
    assert expected in capsys.readouterr().out and not (state / APPROVALS_NAME).exists()
    assert main(["site", "approve", str(app), "--state-dir", str(state)]) == 0
    assert f"approved {expected} (medfleet/medfleet 0.1.0)" in capsys.readouterr().out
    assert main(["site", "apps", "--json", "--state-dir", str(state)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["hash"], a["source"]) for a in listed] == [(expected, f"folder {app.resolve()}")]
    assert main(["site", "revoke", expected[:10], "--state-dir", str(state)]) == 0
    assert main(["site", "apps", "--state-dir", str(state)]) == 0
    assert "no app approved" in capsys.readouterr().out
    assert main(["site", "revoke", expected, "--state-dir", str(state)]) == 2
