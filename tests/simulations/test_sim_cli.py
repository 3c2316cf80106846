"""`medfleet sim`: option parsing and the end-of-run summary."""

import pytest

from shared.config import parse_overrides
from shared.errors import ConfigError
from simulations.cli import _data_lines


def test_set_options_are_typed() -> None:
    # Execute
    options = parse_overrides(["image-size=96", "lr=0.5", "secagg=true", "seg-channels=8,16"])

    # Assert
    assert options == {"image-size": 96, "lr": 0.5, "secagg": True, "seg-channels": "8,16"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["image-size"])


def test_summary_lists_each_sites_data_report() -> None:
    # Prepare
    sites = {
        "site-1": {
            "data_usable": 10,
            "data_skipped": 3,
            "data_skipped_truncated": 2,
            "data_skipped_not_dicom": 1,
        },
        "site-2": {"data_usable": 7, "data_skipped": 0},
    }
    rounds = [{"fit": {"sites": sites}}]

    # Execute
    lines = _data_lines(rounds)

    # Assert
    assert lines[0].startswith(
        "site-1: 10 usable images, 3 files skipped (not dicom 1, truncated 2"
    )
    assert lines[1] == "site-2: 7 usable images, 0 files skipped"
