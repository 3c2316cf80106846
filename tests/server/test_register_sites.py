"""Site keys are registered with a real SuperLink in-process, as `flwr supernode register` would."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.launcher import (
    CONNECTION,
    ServerKit,
    flwr_cli,
    register_sites,
    start_server,
)
from server.provision import provision
from tests.deployment import harness

pytestmark = pytest.mark.slow  # a SuperLink of its own

SITES = ("site-a", "site-b", "site-c")


def test_keys_register_once_with_the_node_ids_flower_lists(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: a provisioned server on a SuperLink of its own (no proxy)
    port = harness.free_port()
    federation = harness.federation_file(tmp_path / "f.toml", f"127.0.0.1:{port}", SITES)
    provision(federation, tmp_path / "kits")
    srv, state = ServerKit.load(tmp_path / "kits" / "server"), tmp_path / "state"
    server = start_server(srv, state, "127.0.0.1", port, proxy=False)
    try:
        # Execute: register, then again as a restarted server on the same state does
        with caplog.at_level(logging.INFO, logger="medfleet"):
            first = register_sites(srv, state / "flwr-home", state)
            again = register_sites(srv, state / "flwr-home", state)
        rc, listed = flwr_cli(["supernode", "ls", CONNECTION], state / "flwr-home")
    finally:
        server.stop()

    # Assert: one node per site, the ones Flower's own CLI lists (none connected yet);
    # the second call registers nothing new and keeps the stored ids
    assert rc == 0
    listed_ids = {str(n["node-id"]): n["status"] for n in listed["nodes"]}
    assert set(first) == set(SITES)
    assert listed_ids == dict.fromkeys(first.values(), "registered")
    assert again == first
    notes = [r.getMessage() for r in caplog.records]
    assert sum("was registered before" in n for n in notes) == len(SITES)
