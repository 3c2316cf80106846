"""Tests of the MONAI `LoadDicomImaged` transform."""

from __future__ import annotations

from pathlib import Path

import dicom_factory as factory
import numpy as np
from monai.data import CacheDataset
from monai.transforms import Compose, ScaleIntensityd

from shared.dicom.transforms import LoadDicomImaged


def test_load_dicom_imaged_gives_channel_first_float32(tmp_path: Path) -> None:
    # Prepare
    stored = factory.stored_values(frames=3, seed=11)
    path = factory.write(factory.image_dataset(stored), tmp_path / "mf.dcm")
    transform = LoadDicomImaged(keys="image")

    # Execute
    out = transform({"image": path, "label": 1})

    # Assert
    assert out["label"] == 1
    assert out["image"].shape == (1, factory.ROWS, factory.COLUMNS)
    assert out["image"].dtype == np.float32
    expected = stored[1] * factory.SLOPE + factory.INTERCEPT
    np.testing.assert_array_equal(out["image"][0], expected)


def test_load_dicom_imaged_composes_with_cache_dataset(tmp_path: Path) -> None:
    # Prepare
    paths = [
        factory.write(factory.image_dataset(factory.stored_values(seed=i)), tmp_path / f"{i}.dcm")
        for i in range(3)
    ]
    pipeline = Compose([LoadDicomImaged(keys="image"), ScaleIntensityd(keys="image")])

    # Execute
    dataset = CacheDataset([{"image": str(p)} for p in paths], pipeline, progress=False)

    # Assert
    assert len(dataset) == 3
    image = np.asarray(dataset[0]["image"])
    assert image.shape == (1, factory.ROWS, factory.COLUMNS)
    assert float(image.min()) == 0.0 and float(image.max()) == 1.0
