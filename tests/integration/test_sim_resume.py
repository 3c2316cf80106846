"""`medfleet sim --resume`: an interrupted FedAdam run ends at the same model, no round twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from server.checkpoint import load_checkpoint
from shared.cli import main
from simulations.synth import generate_sites

pytestmark = pytest.mark.slow


def _sim(data: Path, out: Path, rounds: int) -> int:
    argv = ["sim", "--sites", "2", "--rounds", str(rounds), "--strategy", "fedadam",
            "--set", "image-size=32"]  # fmt: skip
    return main([*argv, "--data", str(data), "--out", str(out), "--device", "cpu"])


def test_resumed_run_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    # Prepare: one run of 4 rounds, one stopped after round 2 (as a crash in round 3 leaves
    # it: rounds 1-2 recorded and checkpointed, round 3 never aggregated)
    data = tmp_path / "data"
    generate_sites(data, n_sites=2, seed=42, scale=0.2)
    assert _sim(data, tmp_path / "straight", 4) == 0
    assert _sim(data, tmp_path / "resumed", 2) == 0
    record = json.loads((tmp_path / "resumed" / "run.json").read_text())
    record["status"] = "running"  # what a killed server leaves behind
    (tmp_path / "resumed" / "run.json").write_text(json.dumps(record))

    # Execute
    code = main(["sim", "--resume", str(tmp_path / "resumed"), "--rounds", "4"])

    # Assert: every round once, the resumption noted, the same weights as without a crash
    assert code == 0
    resumed = json.loads((tmp_path / "resumed" / "run.json").read_text())
    assert [r["round"] for r in resumed["rounds"]] == [1, 2, 3, 4]
    assert resumed["status"] == "completed"
    assert [(r["after_round"], r["discarded_partial_rounds"]) for r in resumed["resumes"]] == [
        (2, [])
    ]
    want = load_checkpoint(tmp_path / "straight" / "checkpoints" / "round-4.npz")
    got = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "round-4.npz")
    assert set(got.strategy_state) == {"current_weights", "m_t", "v_t"}
    for name, array in want.state.items():
        np.testing.assert_allclose(got.state[name], array, rtol=1e-5, atol=1e-6, err_msg=name)
