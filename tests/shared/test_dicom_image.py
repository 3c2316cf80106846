"""Tests of `load_image`: modality units, MONOCHROME1, codecs, encodings, frames, errors."""

from __future__ import annotations

from pathlib import Path

import dicom_factory as factory
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from shared.dicom import load_image
from shared.errors import DataError


def expected_units(stored: np.ndarray) -> np.ndarray:
    """Stored value * slope + intercept, computed independently of pydicom."""
    return stored.astype(np.float64) * factory.SLOPE + factory.INTERCEPT


def test_rescale_gives_modality_units(tmp_path: Path) -> None:
    # Prepare
    stored = factory.stored_values(seed=3)
    path = factory.write(factory.image_dataset(stored), tmp_path / "ct.dcm")

    # Execute
    image = load_image(path)

    # Assert
    assert image.dtype == np.float32
    assert image.shape == (factory.ROWS, factory.COLUMNS)
    np.testing.assert_array_equal(image, expected_units(stored[0]))


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless])
def test_compressed_decode_equals_uncompressed(tmp_path: Path, syntax: str) -> None:
    # Prepare
    stored = factory.stored_values(seed=4)
    plain = factory.write(factory.image_dataset(stored), tmp_path / "plain.dcm")
    packed = factory.write_compressed(factory.image_dataset(stored), tmp_path / "packed", syntax)

    # Execute
    decoded = load_image(packed)

    # Assert
    np.testing.assert_array_equal(decoded, load_image(plain))


@pytest.mark.parametrize(
    "writer",
    [
        lambda ds, path: factory.write(ds, path, big_endian=True),
        lambda ds, path: factory.write(ds, path, implicit=True),
        lambda ds, path: factory.write_without_preamble(ds, path),
        lambda ds, path: factory.write_without_preamble(ds, path, keep_meta=False),
        factory.write_deflated,
    ],
    ids=["big-endian", "implicit-vr", "no-preamble", "no-file-meta", "deflated"],
)
def test_uncompressed_encodings_decode_alike(tmp_path: Path, writer) -> None:  # noqa: ANN001
    # Prepare
    stored = factory.stored_values(seed=5)
    path = writer(factory.image_dataset(stored), tmp_path / "image")

    # Execute
    image = load_image(path)

    # Assert
    np.testing.assert_array_equal(image, expected_units(stored[0]))


def test_monochrome1_is_inverted_so_higher_is_brighter(tmp_path: Path) -> None:
    # Prepare
    stored = factory.stored_values(seed=6)
    ds = factory.image_dataset(stored, photometric="MONOCHROME1")
    del ds.RescaleSlope, ds.RescaleIntercept
    path = factory.write(ds, tmp_path / "cr.dcm")

    # Execute
    image = load_image(path)

    # Assert: 12 bits stored, unsigned: output range 0..4095 flipped.
    np.testing.assert_array_equal(image, 4095.0 - stored[0])


def test_monochrome1_with_rescale_stays_in_the_rescaled_range(tmp_path: Path) -> None:
    # Prepare
    stored = factory.stored_values(seed=7)
    path = factory.write(
        factory.image_dataset(stored, photometric="MONOCHROME1"), tmp_path / "cr.dcm"
    )
    low, high = expected_units(np.array([0, 4095]))

    # Execute
    image = load_image(path)

    # Assert
    np.testing.assert_array_equal(image, low + high - expected_units(stored[0]))


def test_multiframe_gives_central_or_requested_frame(tmp_path: Path) -> None:
    # Prepare
    stored = factory.stored_values(frames=3, seed=8)
    path = factory.write(factory.image_dataset(stored), tmp_path / "mf.dcm")

    # Execute
    central, first = load_image(path), load_image(path, frame=0)

    # Assert
    np.testing.assert_array_equal(central, expected_units(stored[1]))
    np.testing.assert_array_equal(first, expected_units(stored[0]))
    with pytest.raises(DataError, match="out of range"):
        load_image(path, frame=3)


def test_enhanced_multiframe_rescale_from_functional_groups(tmp_path: Path) -> None:
    # Prepare
    stored = factory.stored_values(frames=2, seed=9)
    ds = factory.image_dataset(stored)
    del ds.RescaleSlope, ds.RescaleIntercept
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 3, -10, "US"
    shared = Dataset()
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    path = factory.write(ds, tmp_path / "enhanced.dcm")

    # Execute
    image = load_image(path)

    # Assert
    np.testing.assert_array_equal(image, stored[1] * 3.0 - 10.0)


def test_corrupt_pixel_data_raises_data_error_without_path(tmp_path: Path) -> None:
    # Prepare
    source = factory.write(factory.image_dataset(factory.stored_values()), tmp_path / "a.dcm")
    cut = factory.truncated(source, tmp_path / "secret-name.dcm")
    rle = factory.write_compressed(
        factory.image_dataset(factory.stored_values()), tmp_path / "r.dcm", RLELossless
    )
    data = bytearray(rle.read_bytes())
    fragment = data.index(b"\xfe\xff\x00\xe0", data.index(b"\xfe\xff\x00\xe0") + 1) + 8
    data[fragment : fragment + 4] = (5).to_bytes(4, "little")  # RLE header: wrong segment count
    rle.write_bytes(bytes(data))

    # Execute
    errors = []
    for path in (cut, rle, factory.random_bytes(tmp_path / "secret-random")):
        with pytest.raises(DataError) as info:
            load_image(path)
        errors.append(str(info.value))

    # Assert
    assert all("secret" not in message and str(tmp_path) not in message for message in errors)


def test_unsupported_colour_and_undecodable_raise_data_error(tmp_path: Path) -> None:
    # Prepare
    hsv = factory.unsupported_colour(tmp_path / "hsv.dcm")
    video = factory.undecodable(tmp_path / "video.dcm")

    # Execute / Assert
    with pytest.raises(DataError, match="unsupported photometric"):
        load_image(hsv)
    with pytest.raises(DataError, match="decoder"):
        load_image(video)
