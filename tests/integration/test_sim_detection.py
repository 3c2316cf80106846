"""One federated round of the detection task on synthetic CT sites, through `medfleet sim`."""

import json
from pathlib import Path

import pytest

from shared.cli import main

pytestmark = pytest.mark.slow

SHOWN = (
    "cpm",
    "map",
    "loss",
    *(f"sens_at_{r}" for r in ("0_125", "0_25", "0_5", "1", "2", "4", "8")),
)


def test_one_detection_round_records_froc_and_map_per_site(tmp_path: Path) -> None:
    # Prepare: two small sites (2D detector: quick on a CPU)
    out = tmp_path / "run"

    # Execute
    code = main(["sim", "--task", "detection", "--sites", "2", "--rounds", "1", "--out", str(out),
                 "--batch-size", "16", "--synth-scale", "0.5", "--device", "cpu",
                 "--set", "det-spatial-dims=2"])  # fmt: skip

    # Assert: every site and the overall row carry the FROC points, CPM and mAP; only
    # counts leave a site (its FROC bins), and the overall counts are their sums
    record = json.loads((out / "run.json").read_text())
    assert code == 0 and record["status"] == "completed"
    evaluate = record["rounds"][0]["evaluate"]
    assert set(evaluate["sites"]) == {"site-1", "site-2"}
    for metrics in [*evaluate["sites"].values(), evaluate["aggregated"]]:
        assert set(SHOWN) <= set(metrics)
    sites = evaluate["sites"].values()
    assert evaluate["aggregated"]["froc_nodules"] == sum(m["froc_nodules"] for m in sites)
    fit = record["rounds"][0]["fit"]["sites"]
    assert all(m["data_annotations_used"] == m["data_annotations"] for m in fit.values())
    assert (out / "global_model.pt").is_file()
