"""Colour images are data: each photometric interpretation gives its known grey values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import colour_factory as colour
import dicom_factory as factory
import numpy as np
import pytest

from shared.dicom import SkipReason, index_folder, load_image
from shared.dicom.transforms import LoadDicomImaged

Builder = Callable[[Path], tuple[Path, np.ndarray]]


def _monochrome2(path: Path) -> tuple[Path, np.ndarray]:
    stored = factory.stored_values(seed=30)
    ds = factory.image_dataset(stored)
    return factory.write(ds, path), stored[0] * factory.SLOPE + factory.INTERCEPT


def _monochrome1(path: Path) -> tuple[Path, np.ndarray]:
    stored = factory.stored_values(seed=31)
    ds = factory.image_dataset(stored, modality="CR", photometric="MONOCHROME1")
    del ds.RescaleSlope, ds.RescaleIntercept
    return factory.write(ds, path), 4095.0 - stored[0]  # 12 bits stored, flipped


# (builder, largest allowed grey-level error): rounding in YBR->RGB moves luminance by
# at most one level; lossy codecs by a few.
CASES: dict[str, tuple[Builder, float]] = {
    "MONOCHROME2": (_monochrome2, 0.0),
    "MONOCHROME1": (_monochrome1, 0.0),
    "RGB": (colour.rgb_file, 1e-3),
    "RGB-planar": (lambda path: colour.rgb_file(path, planar=1), 1e-3),
    "YBR_FULL": (colour.ybr_full_file, 1.0),
    "YBR_FULL_422": (colour.ybr_full_422_file, 1.0),
    "YBR_FULL_422-jpeg": (colour.jpeg_baseline_file, 2.0),
    "YBR_RCT": (colour.j2k_mct_file, 1e-3),
    "YBR_ICT": (lambda path: colour.j2k_mct_file(path, lossless=False), 1.5),
    "PALETTE COLOR": (colour.palette_file, 0.01),
    "PALETTE COLOR-offset": (lambda path: colour.palette_file(path, first_mapped=50), 0.01),
}


@pytest.mark.parametrize("case", CASES)
def test_each_photometric_interpretation_gives_its_known_grey_values(
    tmp_path: Path, case: str
) -> None:
    # Prepare
    build, tolerance = CASES[case]
    path, expected = build(tmp_path / "image.dcm")

    # Execute
    image = load_image(path)

    # Assert
    assert image.dtype == np.float32
    assert image.shape == (factory.ROWS, factory.COLUMNS)
    np.testing.assert_allclose(image, expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize("case", ["RGB", "RGB-planar", "YBR_RCT"])
def test_three_channels_give_the_rgb_samples(tmp_path: Path, case: str) -> None:
    # Prepare
    path, _ = CASES[case][0](tmp_path / "image.dcm")
    seed = 24 if case == "YBR_RCT" else 21
    rgb = factory.rgb_values(seed=seed)

    # Execute
    image = load_image(path, channels=3)

    # Assert
    assert image.shape == (3, factory.ROWS, factory.COLUMNS)
    np.testing.assert_array_equal(image, np.moveaxis(rgb, -1, 0))


def test_ybr_three_channels_are_converted_to_rgb(tmp_path: Path) -> None:
    # Prepare: YBR_FULL with neutral chroma is grey: R = G = B = Y.
    ybr = colour.ycbcr_values(seed=32)
    ybr[..., 1:] = 128
    path = factory.write(factory.colour_dataset(ybr, "YBR_FULL"), tmp_path / "ybr.dcm")

    # Execute
    image = load_image(path, channels=3)

    # Assert
    for channel in image:
        np.testing.assert_allclose(channel, ybr[..., 0], atol=1.0)


def test_grey_image_on_three_channels_is_repeated(tmp_path: Path) -> None:
    # Prepare
    path, expected = _monochrome1(tmp_path / "cr.dcm")

    # Execute
    image = load_image(path, channels=3)

    # Assert
    assert image.shape == (3, factory.ROWS, factory.COLUMNS)
    for channel in image:
        np.testing.assert_array_equal(channel, expected)


def test_channels_other_than_one_or_three_are_refused(tmp_path: Path) -> None:
    # Prepare
    path, _ = colour.rgb_file(tmp_path / "rgb.dcm")

    # Execute / Assert
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        load_image(path, channels=2)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        LoadDicomImaged(keys="image", channels=4)


def test_transform_gives_one_or_three_channels(tmp_path: Path) -> None:
    # Prepare
    path, expected = colour.rgb_file(tmp_path / "rgb.dcm")

    # Execute
    grey = LoadDicomImaged(keys="image")({"image": path})["image"]
    rgb = LoadDicomImaged(keys="image", channels=3)({"image": path})["image"]

    # Assert
    assert grey.shape == (1, factory.ROWS, factory.COLUMNS)
    np.testing.assert_allclose(grey[0], expected, atol=1e-3)
    np.testing.assert_array_equal(rgb, np.moveaxis(factory.rgb_values(seed=21), -1, 0))


def test_colour_images_are_indexed_as_usable(tmp_path: Path) -> None:
    # Prepare
    for case, (build, _) in CASES.items():
        build(tmp_path / f"{case}.dcm")
    factory.unsupported_colour(tmp_path / "hsv.dcm")

    # Execute
    records, report = index_folder(tmp_path)

    # Assert
    assert len(records) == len(CASES)
    assert report.usable_by_modality == {"CT": 1, "CR": 1, "OT": 7, "US": 2}
    assert report.skipped_by_reason == {SkipReason.UNSUPPORTED_PHOTOMETRIC.value: 1}


def test_palette_without_its_tables_is_a_missing_attribute(tmp_path: Path) -> None:
    # Prepare
    path, _ = colour.palette_file(tmp_path / "palette.dcm")
    from pydicom import dcmread

    ds = dcmread(path)
    del ds.BluePaletteColorLookupTableData
    ds.save_as(path)

    # Execute
    records, report = index_folder(tmp_path)

    # Assert
    assert records == []
    assert report.skipped_by_reason == {SkipReason.MISSING_ATTRIBUTE.value: 1}
