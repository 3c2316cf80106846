"""`medfleet predict` with a model of two series per study: one SEG per study, on its T1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import highdicom as hd
import pytest
from pydicom import dcmread

from shared.bundle import save_bundle
from shared.cli import main
from shared.config import RunConfig
from shared.tasks import get_task
from simulations.synth.mr_two_contrast import generate_two_contrast_site
from simulations.synth.sites import site_profiles

TINY = {"seg-channels": "4,8", "seg-patch-size": 16, "seg-res-units": 1}


@pytest.mark.slow
def test_predict_writes_a_seg_on_the_t1_of_each_complete_study(tmp_path: Path) -> None:
    # Prepare: four T1 + T2 studies; one loses its T2, the SEGs (labels) are left out
    site = generate_two_contrast_site(tmp_path / "site", site_profiles(3, scale=0.2)[2], seed=4)
    source = tmp_path / "input"
    for path in site.rglob("*.dcm"):
        if path.parent.name != "SEG" and not (
            path.parts[-3] == "P0002" and path.parent.name == "T2"
        ):
            target = source / path.relative_to(site)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    t1_uids = {
        p.parts[-3]: str(
            dcmread(next((p.parent).glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID
        )
        for p in source.glob("P*/T1/IM00001.dcm")
    }
    config = {"task": "segmentation", "seg-inputs": "MR:T1*,MR:T2*", **TINY}
    task = get_task(RunConfig.from_mapping(config))
    save_bundle(tmp_path / "run" / "global_model.pt", task, task.build_model())
    out = tmp_path / "out"

    # Execute
    code = main(
        ["predict", "--model", str(tmp_path / "run"), "--input", str(source), "--out", str(out)]
    )

    # Assert: a SEG per complete study, each referencing that study's T1 series
    assert code == 0
    referenced = {
        str(hd.seg.segread(path).ReferencedSeriesSequence[0].SeriesInstanceUID)
        for path in (out / "seg").glob("*.dcm")
    }
    assert referenced == {uid for patient, uid in t1_uids.items() if patient != "P0002"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["studies"] == 4 and summary["inputs"]["volumes"] == 3
    assert summary["inputs"]["studies_skipped_study_lacks_a_series_named_by_seg_inputs"] == 1
    assert summary["model"]["inputs"]["series"] == ["MR:T1*", "MR:T2*"]
