"""A site whose data is unusable fails with one clear reason; the run goes on without it."""

from __future__ import annotations

import json
from pathlib import Path

from shared.config import RunConfig
from simulations.runner import SimulationOptions, run_simulation_job
from simulations.synth import generate_sites


def test_a_site_without_usable_data_is_left_out_and_named(tmp_path: Path) -> None:
    # Prepare: site-3 holds only what is not an image
    data, out = tmp_path / "data", tmp_path / "out"
    sites = generate_sites(data, n_sites=3, seed=42, scale=0.2)
    for path in sites[2].rglob("*"):
        if path.is_file():
            path.write_bytes(b"not a DICOM file")
    run = RunConfig.from_mapping(
        {
            "num-server-rounds": 2,
            "min-sites": 2,
            "sim-data-root": str(data),
            "out-dir": str(out),
            "device": "cpu",
        }
    )

    # Execute
    record = run_simulation_job(SimulationOptions(run, 3, data, synth_scale=0.2))

    # Assert: both rounds ran on the two usable sites, the third named its reason
    assert record["status"] == "completed"
    for entry in record["rounds"]:
        assert set(entry["fit"]["sites"]) == {"site-1", "site-2"}
        assert entry["fit"]["failures"] == 1
        assert len(entry["errors"]) == 1
        assert "DataError: site has no usable DICOM images" in entry["errors"][0]
    sent = json.dumps([{k: e[k] for k in ("fit", "evaluate", "errors")} for e in record["rounds"]])
    assert str(tmp_path) not in sent  # what the sites sent names no path
