"""Sites run only approved apps: a changed app is refused at every site before any import.

The package's federation (TLS, site authentication, SecAgg+, three sites) has approval on,
the default. The approved app trains (the coordinator's run); a copy with one extra line
in client/client_app.py, which writes a marker file when imported, is refused by every
site with its FAB hash named, and no marker appears; once the sites approve that copy
too, the same run trains and the marker does appear (so the marker would have shown an
import, also in a ClientApp forked from the launcher's warm process).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from client.approval import ApprovalStore, load_app
from client.launcher import refusal_reason
from tests.deployment import harness
from tests.deployment.federation.conftest import SITES
from tests.deployment.fleet import Fleet

pytestmark = pytest.mark.slow

MARKER = "IMPORTED-CHANGED-APP"
# One line more in the ClientApp module: it runs when (and only when) the module is imported.
CHANGED_LINE = (
    "import os as _o, pathlib as _p; "
    f"(_p.Path(_o.environ['FLWR_HOME']).parent / ('{MARKER}-' + str(_o.getpid()))).touch()\n"
)


@pytest.fixture(scope="module")
def fleet(federation: Fleet, finished_run: Path) -> Fleet:
    """The federation, once the coordinator's run is done (one run at a time here)."""
    return federation


@pytest.fixture(scope="module")
def changed_app(fleet: Fleet) -> Path:
    """A copy of the fleet's app with the marker line appended to client/client_app.py."""
    assert fleet.app is not None
    app = shutil.copytree(fleet.app, fleet.root / "app-changed")
    module = app / "client" / "client_app.py"
    module.write_text(module.read_text() + CHANGED_LINE)
    return app


def _run(fleet: Fleet, app: Path, out: Path) -> tuple[int, str, dict]:
    args = fleet.run_args(out, "--rounds", "1", "--set", "round-timeout=60")
    args[args.index("--app") + 1] = str(app)
    done = fleet.cli(args, timeout=400)
    return done.returncode, done.stdout + done.stderr, harness.read_json(out / "run.json")


def _markers(fleet: Fleet) -> list[Path]:
    return [p for site in SITES for p in (fleet.root / f"{site}-state").glob(f"{MARKER}-*")]


def test_approved_app_trains(fleet: Fleet, finished_run: Path) -> None:
    # Prepare: what each site approved is the app that is submitted
    assert fleet.app is not None
    expected, _ = load_app(str(fleet.app))
    for site in SITES:
        assert expected.hash in ApprovalStore(fleet.root / f"{site}-state").apps()
    # Execute: the coordinator's run of that app
    record = json.loads((finished_run / "run.json").read_text())
    # Assert
    assert record["status"] == "completed"
    for site in SITES:
        log = (fleet.root / f"{site}.log").read_text()
        assert f"app {expected.hash} approved" in log


def test_changed_app_is_refused_by_every_site_before_import(
    fleet: Fleet, changed_app: Path
) -> None:
    # Prepare: the one-line change gives another hash, approved nowhere
    assert fleet.app is not None
    original, _ = load_app(str(fleet.app))
    changed, _ = load_app(str(changed_app))
    assert changed.hash != original.hash
    # Execute
    code, output, record = _run(fleet, changed_app, fleet.root / "run-changed")
    # Assert: the run failed, each site refused it naming the hash, nothing was imported
    assert code != 0 and record.get("status") == "failed", output[-3000:]
    for site in SITES:
        log = (fleet.root / f"{site}.log").read_text()
        assert f"REFUSED app {changed.hash}: not approved at this site" in log
        assert f"app {changed.hash} approved" not in log
    assert not _markers(fleet)
    # The server got each refusal as the site's error reply (held in the SuperLink's state)
    held = b"".join(p.read_bytes() for p in fleet.server_state.glob("superlink.db*"))
    for site in SITES:
        assert refusal_reason(site, changed.hash).encode() in held


def test_changed_app_runs_once_approved_so_the_marker_would_show_an_import(
    fleet: Fleet, changed_app: Path
) -> None:
    # Prepare: each site's admin approves the changed app while the daemons run
    for site in SITES:
        state = fleet.root / f"{site}-state"
        done = fleet.cli(["site", "approve", str(changed_app), "--state-dir", str(state)],
                         site=site)  # fmt: skip
        assert done.returncode == 0, done.stderr
    # Execute
    code, output, record = _run(fleet, changed_app, fleet.root / "run-changed-approved")
    # Assert: it trained, and its changed line ran at every site
    assert code == 0 and record["status"] == "completed", output[-3000:]
    marked = {p.parent.name for p in _markers(fleet)}
    assert marked == {f"{site}-state" for site in SITES}
