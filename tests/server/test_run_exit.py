"""`medfleet server run` takes its exit status from the run record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.cli import _record_status


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"status": "completed"}, 0),
        ({"status": "failed", "error": "round 5 has 2 usable site updates"}, 1),
        ({"status": "running"}, 1),  # the ServerApp died before it could write the end
    ],
)
def test_exit_status_follows_run_json(tmp_path: Path, record: dict, expected: int) -> None:
    (tmp_path / "run.json").write_text(json.dumps(record))
    assert _record_status(tmp_path) == expected


def test_missing_record_is_a_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert _record_status(tmp_path) == 1
    assert "no readable run.json" in caplog.text
