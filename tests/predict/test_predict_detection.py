"""`medfleet predict` for detection: JSON, a DICOM SR per series read back, PNG slices."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from matplotlib.image import imread
from pydicom import dcmread

from shared.bundle import save_bundle
from shared.cli import main
from shared.config import RunConfig
from shared.tasks import get_task
from shared.tasks.det_data import index_detection_site
from simulations.synth import generate_sites


def test_predict_writes_an_sr_with_one_finding_per_box_on_its_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a site's images only, a model file, and a detector that answers with the
    # site's own reference boxes (so what the SR must hold is known)
    (site,) = generate_sites(tmp_path / "sites", 1, seed=2, task="detection", scale=0.2)
    cases, _ = index_detection_site(site)
    case = max(cases, key=lambda c: len(c.boxes))
    images = tmp_path / "study"
    shutil.copytree(case.paths[0].parent, images)
    task = get_task(RunConfig.from_mapping({"task": "detection"}))
    save_bundle(tmp_path / "run" / "global_model.pt", task, task.build_model())
    scores = np.linspace(0.9, 0.6, len(case.boxes))
    monkeypatch.setattr(
        "shared.tasks.det_predict.detect", lambda *args: (case.boxes.copy(), scores.copy())
    )
    spacing = np.linalg.norm(case.affine[:3, :3], axis=0)
    diameters = ((case.boxes[:, 3:5] - case.boxes[:, 0:2]) * spacing[:2]).mean(axis=1)
    out = tmp_path / "out"

    # Execute
    code = main(["predict", "--model", str(tmp_path / "run"), "--input", str(images),
                 "--out", str(out)])  # fmt: skip

    # Assert: the SR references the source series, one finding per box with its diameter
    assert code == 0
    assert len(case.boxes) >= 1
    ds = dcmread(out / "sr" / f"{case.uid}.dcm")
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert [str(item.SeriesInstanceUID) for item in evidence] == [case.uid]
    series_sops = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in case.paths}
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == len(case.boxes)
    for group, diameter in zip(groups, diameters, strict=True):
        (measurement,) = group.get_measurements()
        assert measurement.value == pytest.approx(diameter, abs=0.01)
        (source,) = group.roi.ContentSequence[0].ReferencedSOPSequence  # the circle's slice
        assert str(source.ReferencedSOPInstanceUID) in series_sops
    # JSON: the same boxes in patient mm, best first; a PNG of each box's central slice
    table = json.loads((out / "detections.json").read_text())
    assert [d["diameter_mm"] for d in table[case.uid]] == pytest.approx(diameters, abs=0.01)
    assert [d["score"] for d in table[case.uid]] == pytest.approx(scores, abs=1e-4)
    pngs = sorted((out / "png").glob("*.png"))
    assert len(pngs) == len(case.boxes)
    assert imread(pngs[0]).shape[:2] == (4 * case.shape[1], 4 * case.shape[0])  # 64 -> 256
