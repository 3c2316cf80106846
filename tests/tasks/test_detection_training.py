"""After a short training on easy synthetic CT, a nodule at a known position is found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data.box_utils import box_centers

from shared.config import RunConfig
from shared.tasks import get_task
from shared.tasks.base import TrainSettings
from simulations.synth import generate_sites
from simulations.synth.detection import write_detection_series
from simulations.synth.nodules import Nodule, detection_geometry
from simulations.synth.sites import site_profiles

pytestmark = pytest.mark.slow

EPOCHS = 10


def test_a_nodule_at_a_known_position_is_found_within_its_radius(tmp_path: Path) -> None:
    # Prepare: one site of 8 series (2D detector on axial slices: quick on a CPU), and a
    # new series with one 12 mm solid nodule at a chosen voxel position
    (site,) = generate_sites(tmp_path / "sites", 1, seed=11, task="detection", scale=1.0)
    task = get_task(RunConfig.from_mapping({"task": "detection", "det-spatial-dims": 2}))
    data = task.load_site(site)
    model = task.build_model()
    profile = site_profiles(1)[0]
    nodule = Nodule(center_voxel=(40.0, 22.0, 15.0), diameter_mm=12.0, part_solid=False)
    write_detection_series(tmp_path / "new", profile, seed=99, number=1, nodules=[nodule])
    grid = detection_geometry(profile)
    spacing = np.array([grid.pixel_mm, grid.pixel_mm, grid.slice_mm])

    # Execute
    for epoch in range(1, EPOCHS + 1):
        settings = TrainSettings(local_epochs=1, batch_size=16, lr=1e-3, seed=0,
                                 device=torch.device("cpu"), server_round=epoch)  # fmt: skip
        task.train_round(model, data, settings)
    (found,) = task.predict(model, tmp_path / "new", settings)

    # Assert: the best-scored box is centred within the nodule's radius (mm)
    boxes = found.references[0].boxes
    assert len(boxes) >= 1
    best = np.asarray(box_centers(boxes[:1]))[0]
    distance = float(np.linalg.norm((best - np.array(nodule.center_voxel)) * spacing))
    assert distance <= nodule.diameter_mm / 2.0, (best, distance)
    assert found.values["max_score"] > 0.5
