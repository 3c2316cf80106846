"""Tests of the detection task: CSV to voxel boxes, FROC/CPM and mAP by hand, options, weights."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data.box_utils import box_centers

from shared.config import RunConfig
from shared.errors import ConfigError
from shared.tasks import get_task
from shared.tasks.det_data import index_detection_site
from shared.tasks.det_metrics import (
    ScanResult,
    aggregate_detection_metrics,
    froc_counts,
    froc_from_counts,
    mean_average_precision,
    site_metrics,
)
from shared.tasks.detection import DetectionTask
from simulations.synth import generate_sites


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sites(tmp_path_factory.mktemp("det"), 1, seed=4, task="detection", scale=0.2)[0]


def _truth(site_dir: Path) -> dict[str, list[list[float]]]:
    truth: dict[str, list[list[float]]] = {}
    with (site_dir / "nodules.csv").open() as handle:
        for row in csv.DictReader(handle):
            point = [float(row[k]) for k in ("voxel_x", "voxel_y", "voxel_z", "diameter_mm")]
            truth.setdefault(row["seriesuid"], []).append(point)
    return truth


def test_voxel_boxes_match_the_positions_the_generator_wrote(site: Path) -> None:
    # Prepare: the generator's own voxel centres and its grid
    truth = _truth(site)
    grid = json.loads((site / "site.json").read_text())["detection"]
    spacing = np.array([grid["pixel_mm"], grid["pixel_mm"], grid["slice_mm"]])

    # Execute
    cases, counts = index_detection_site(site)

    # Assert: every annotation became a box centred on its nodule, sized by its diameter
    assert counts["annotations"] == counts["annotations_used"] == sum(map(len, truth.values()))
    assert counts["annotations_used"] > 0
    for case in cases:
        expected = sorted(truth.get(case.uid, []))
        got = sorted(
            [*c, float(np.mean(s))]
            for c, s in zip(
                np.asarray(box_centers(case.boxes)).tolist(),
                ((case.boxes[:, 3:] - case.boxes[:, :3]) * spacing).tolist(),
                strict=True,
            )
        )
        assert np.allclose(np.array(got).reshape(-1, 4), np.array(expected).reshape(-1, 4),
                           atol=2e-3), case.case_id  # fmt: skip


def test_unknown_series_outside_and_malformed_rows_are_skipped_and_counted(
    site: Path, tmp_path: Path
) -> None:
    # Prepare: a copy of the site with three bad rows added to annotations.csv
    copy = Path(shutil.copytree(site, tmp_path / "site"))
    rows = list(csv.reader((copy / "annotations.csv").open()))
    uid = rows[1][0]
    with (copy / "annotations.csv").open("a", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["1.2.3.4.5", 0.0, 0.0, 0.0, 8.0])  # no such series
        writer.writerow([uid, 0.0, 0.0, float(rows[1][3]) + 500.0, 8.0])  # 0.5 m above it
        writer.writerow([uid, "x", 0.0, 0.0, 8.0])  # not a number
        writer.writerow([uid, 0.0, 0.0, 0.0, -3.0])  # no size

    # Execute
    before, _ = index_detection_site(site)
    cases, counts = index_detection_site(copy)

    # Assert
    assert counts["annotations"] == len(rows) - 1 + 4
    assert counts["annotations_used"] == len(rows) - 1
    assert counts["annotations_skipped_unknown_series"] == 1
    assert counts["annotations_skipped_outside_volume"] == 1
    assert counts["annotations_skipped_malformed"] == 2
    assert [c.boxes.tolist() for c in cases] == [c.boxes.tolist() for c in before]
    assert not any(isinstance(v, str) for v in counts.values())


def _box(center: tuple[float, float, float], side: float = 6.0) -> list[float]:
    half = side / 2.0
    return [*(c - half for c in center), *(c + half for c in center)]


def _scans() -> list[ScanResult]:
    """Two 32x32x8 scans (1 mm voxels), three 6 mm nodules, six detections."""
    scan_a = ScanResult(
        boxes=np.array([_box((10, 11, 4)), _box((20, 5, 4)), _box((24, 25, 4))]),
        scores=np.array([0.9, 0.7, 0.4]),
        truth=np.array([_box((10, 10, 4)), _box((24, 24, 4))]),
        spacing=(1.0, 1.0, 1.0),
        shape=(32, 32, 8),
    )
    scan_b = ScanResult(
        boxes=np.array([_box((5, 25, 4)), _box((16, 16, 5)), _box((28, 5, 4))]),
        scores=np.array([0.8, 0.3, 0.2]),
        truth=np.array([_box((16, 16, 4))]),
        spacing=(1.0, 1.0, 1.0),
        shape=(32, 32, 8),
    )
    return [scan_a, scan_b]


def test_froc_and_cpm_of_hand_made_detections() -> None:
    # Prepare: hits (centre within 3 mm of a nodule) score 0.9, 0.4, 0.3; misses 0.8, 0.7,
    # 0.2. Operating points (FPs per scan, sensitivity), by threshold: 0.9 (0, 1/3),
    # 0.8 (0.5, 1/3), 0.7 (1, 1/3), 0.4 (1, 2/3), 0.3 (1, 1), 0.2 (1.5, 1).
    expected = {
        "sens_at_0_125": 1 / 3, "sens_at_0_25": 1 / 3, "sens_at_0_5": 1 / 3, "sens_at_1": 1.0,
        "sens_at_2": 1.0, "sens_at_4": 1.0, "sens_at_8": 1.0, "cpm": (3 / 3 + 4) / 7,
    }  # fmt: skip

    # Execute
    counts = froc_counts(_scans())
    froc = froc_from_counts(counts)

    # Assert
    assert counts["froc_nodules"] == 3 and counts["froc_scans"] == 2
    assert sum(counts[f"froc_fp_{b}"] for b in range(20)) == 3
    assert froc == pytest.approx(expected)


def test_map_of_hand_made_detections() -> None:
    # Prepare: ranked TP, FP, TP on two nodules: precision 1 up to recall 0.5, then 2/3.
    scan = ScanResult(
        boxes=np.array([_box((10, 10, 4)), _box((20, 5, 4)), _box((24, 25, 4))]),
        scores=np.array([0.9, 0.8, 0.7]),
        truth=np.array([_box((10, 10, 4)), _box((24, 24, 4))]),
        spacing=(1.0, 1.0, 1.0),
        shape=(32, 32, 8),
    )

    # Execute
    value = mean_average_precision([scan])

    # Assert: COCO's 101 recall points: 51 at precision 1 (recall <= 0.5), 50 at 2/3
    assert value == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)


def test_overall_froc_is_the_froc_of_the_pooled_scans() -> None:
    # Prepare: each scan its own site
    first, second = _scans()
    sites = [(1, site_metrics([first])), (1, site_metrics([second]))]

    # Execute
    overall = aggregate_detection_metrics(sites)

    # Assert: summed counts give the FROC of both scans together; mAP weighted by nodules
    pooled = froc_from_counts(froc_counts([first, second]))
    assert {k: overall[k] for k in pooled} == pytest.approx(pooled)
    maps = [m["map"] for _, m in sites]
    assert overall["map"] == pytest.approx((2 * maps[0] + 1 * maps[1]) / 3)


def _task(**options: object) -> DetectionTask:
    task = get_task(RunConfig.from_mapping({"task": "detection", **options}))
    assert isinstance(task, DetectionTask)
    return task


@pytest.mark.parametrize("dims", [3, 2])
def test_detector_trains_on_boxes_and_returns_scored_boxes(dims: int) -> None:
    # Prepare
    task = _task(**{"det-spatial-dims": dims})
    model = task.build_model()
    image = torch.rand(1, *(64, 64, 32)[:dims])
    box = torch.tensor(
        [[20.0, 20.0, 8.0, 30.0, 30.0, 14.0] if dims == 3 else [20.0, 20.0, 30.0, 30.0]]
    )
    target = {"boxes": box, "labels": torch.zeros(1, dtype=torch.long)}

    # Execute
    losses = model.train()([image], [target])
    (losses["classification"] + losses["box_regression"]).backward()
    with torch.no_grad():
        found = model.eval()([image])[0]

    # Assert
    assert set(losses) == {"classification", "box_regression"}
    assert found["boxes"].shape[1] == 2 * dims
    assert len(found["boxes"]) == len(found["labels_scores"])


def test_weights_round_trip_through_float64_as_secagg_returns_them() -> None:
    # Prepare
    task = _task()
    model, other = task.build_model(), _task(seed=7).build_model()
    weights = task.get_weights(model)

    # Execute
    task.set_weights(other, [w.astype(np.float64) for w in weights])

    # Assert: one state dict, integer counters restored as integers
    back = task.get_weights(other)
    assert all(
        np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(weights, back, strict=True)
    )
    assert all(k.startswith("network.") for k in model.state_dict())


@pytest.mark.parametrize(
    ("key", "value"),
    [("det-spatial-dims", 4), ("det-width", 2), ("det-fpn-channels", 1000), ("det-nms-iou", 0.0)],
)
def test_bad_options_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        _task(**{key: value})


def test_dp_sgd_is_refused_for_detection() -> None:
    with pytest.raises(ConfigError, match="dp = 'client'"):
        RunConfig.from_mapping({"task": "detection", "dp": "dp-sgd"})
