"""Bad DICOM never crashes a site: each fault is skipped and counted under its reason."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import dicom_factory as factory
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    GrayscaleSoftcopyPresentationStateStorage,
    JPEG2000Lossless,
    RLELossless,
    RTDoseStorage,
    RTStructureSetStorage,
)

import shared.dicom.image as image_module
from shared.dicom import SkipReason, index_folder, load_image
from shared.errors import DataError


def only_reason(folder: Path) -> dict[str, int]:
    """Index `folder`, check nothing is usable, return the skip counts."""
    records, report = index_folder(folder)
    assert records == []
    return report.skipped_by_reason


def j2k_with_codestream(path: Path, edit) -> Path:  # noqa: ANN001 - bytes -> bytes
    """A JPEG 2000 image whose codestream is replaced by `edit(codestream)`."""
    ds = factory.image_dataset(factory.stored_values())
    ds.compress(JPEG2000Lossless)
    codestream = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([edit(codestream)])
    return factory.write(ds, path)


@pytest.mark.parametrize(
    ("sop_class", "modality", "pixels"),
    [
        (RTStructureSetStorage, "RTSTRUCT", False),
        (RTDoseStorage, "RTDOSE", True),
        (GrayscaleSoftcopyPresentationStateStorage, "PR", False),
        (GrayscaleSoftcopyPresentationStateStorage, "PR", True),
    ],
    ids=["rt-structure-set", "rt-dose", "presentation-state", "presentation-state-pixels"],
)
def test_non_image_objects_are_skipped(
    tmp_path: Path, sop_class: str, modality: str, pixels: bool
) -> None:
    # Prepare
    factory.non_image(tmp_path / "object.dcm", sop_class, modality, pixels=pixels)
    factory.structured_report(tmp_path / "sr.dcm")

    # Execute
    reasons = only_reason(tmp_path)

    # Assert
    assert reasons == {SkipReason.NON_IMAGE.value: 2}


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda ds: setattr(ds, "Rows", factory.ROWS * 2), SkipReason.PIXEL_DATA_MISMATCH),
        (lambda ds: setattr(ds, "Columns", factory.COLUMNS // 2), SkipReason.PIXEL_DATA_MISMATCH),
        (lambda ds: setattr(ds, "NumberOfFrames", 2), SkipReason.PIXEL_DATA_MISMATCH),
        (
            lambda ds: ds.update({"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}),
            SkipReason.PIXEL_DATA_MISMATCH,
        ),
        (lambda ds: setattr(ds, "BitsStored", 17), SkipReason.INVALID_ATTRIBUTE),
        (lambda ds: setattr(ds, "BitsAllocated", 12), SkipReason.INVALID_ATTRIBUTE),
        (lambda ds: setattr(ds, "PixelRepresentation", 2), SkipReason.INVALID_ATTRIBUTE),
        (lambda ds: setattr(ds, "SamplesPerPixel", 3), SkipReason.INVALID_ATTRIBUTE),
        (lambda ds: setattr(ds, "Rows", 0), SkipReason.INVALID_ATTRIBUTE),
        (lambda ds: setattr(ds, "Rows", 65535), SkipReason.PIXEL_DATA_MISMATCH),
    ],
    ids=[
        "rows-doubled",
        "columns-halved",
        "frames-doubled",
        "bits-halved",
        "bits-stored-over-allocated",
        "bits-allocated-12",
        "pixel-representation-2",
        "samples-3-on-grey",
        "rows-0",
        "rows-65535",
    ],
)
def test_pixel_data_not_matching_the_header_is_skipped(
    tmp_path: Path,
    edit,
    reason: SkipReason,  # noqa: ANN001 - Dataset -> None
) -> None:
    # Prepare
    ds = factory.image_dataset(factory.stored_values())
    edit(ds)
    path = factory.write(ds, tmp_path / "image.dcm")

    # Execute
    reasons = only_reason(tmp_path)

    # Assert
    assert reasons == {reason.value: 1}
    with pytest.raises(DataError, match=reason.value.split(" (")[0]):
        load_image(path)


def test_odd_length_pixel_data_with_its_pad_byte_is_usable(tmp_path: Path) -> None:
    # Prepare: 8-bit, 3 x 5 pixels = 15 bytes, written with one pad byte.
    ds = factory.image_dataset(factory.stored_values())
    ds.Rows, ds.Columns = 3, 5
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    values = np.arange(15, dtype=np.uint8)
    ds.PixelData = values.tobytes() + b"\x00"
    path = factory.write(ds, tmp_path / "odd.dcm")

    # Execute
    records, _ = index_folder(tmp_path)
    image = load_image(path)

    # Assert
    assert len(records) == 1
    np.testing.assert_array_equal(image, values.reshape(3, 5) * factory.SLOPE + factory.INTERCEPT)


@pytest.mark.parametrize("syntax", [None, RLELossless], ids=["native", "rle"])
def test_absurd_dimensions_are_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syntax: str | None
) -> None:
    # Prepare: the header claims 65535 x 65535 (8 GiB a frame); the data is 2.5 kB.
    ds = factory.image_dataset(factory.stored_values())
    if syntax:
        ds.compress(syntax)
    ds.Rows = ds.Columns = 65535
    path = factory.write(ds, tmp_path / "huge.dcm")

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a decoder was asked for an absurdly large image")

    monkeypatch.setattr(image_module, "get_decoder", no_decoding)

    # Execute
    tracemalloc.start()
    reasons = only_reason(tmp_path)
    with pytest.raises(DataError, match="too large") as info:
        load_image(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Assert
    assert reasons == {SkipReason.IMAGE_TOO_LARGE.value: 1}
    assert peak < 20 * 2**20
    assert str(tmp_path) not in str(info.value)


@pytest.mark.parametrize(
    "edit",
    [
        lambda cs: b"\x00\x00" + cs[2:],  # no start-of-codestream marker
        lambda cs: cs[: len(cs) // 2],  # tile data cut short
        lambda cs: cs[: len(cs) // 2] + b"\xff\xd9",  # cut, then an end marker
        lambda cs: cs[:60] + np.random.default_rng(0).bytes(60) + cs[120:],  # header garbage
    ],
    ids=["no-soc", "half", "half-with-eoc", "garbled-header"],
)
def test_broken_jpeg2000_codestream_is_skipped(tmp_path: Path, edit) -> None:  # noqa: ANN001
    # Prepare
    path = j2k_with_codestream(tmp_path / "broken.dcm", edit)
    good = factory.write_compressed(
        factory.image_dataset(factory.stored_values()), tmp_path / "good.dcm", JPEG2000Lossless
    )

    # Execute
    records, report = index_folder(tmp_path)

    # Assert
    assert [record.path for record in records] == [good]
    assert report.skipped_files == [(path, SkipReason.UNDECODABLE.value)]
    with pytest.raises(DataError, match="corrupt"):
        load_image(path)


def test_codestream_smaller_than_the_header_is_skipped(tmp_path: Path) -> None:
    # Prepare: the header says 64 x 80, the codestream holds 32 x 40.
    ds = factory.image_dataset(factory.stored_values())
    ds.compress(JPEG2000Lossless)
    ds.Rows, ds.Columns = 2 * factory.ROWS, 2 * factory.COLUMNS
    factory.write(ds, tmp_path / "small.dcm")

    # Execute
    reasons = only_reason(tmp_path)

    # Assert
    assert reasons == {SkipReason.UNDECODABLE.value: 1}


def test_compressed_frames_without_fragments_are_a_mismatch(tmp_path: Path) -> None:
    # Prepare: one RLE fragment, three frames claimed.
    ds = factory.image_dataset(factory.stored_values())
    ds.compress(RLELossless)
    ds.NumberOfFrames = 3
    factory.write(ds, tmp_path / "frames.dcm")

    # Execute
    reasons = only_reason(tmp_path)

    # Assert
    assert reasons == {SkipReason.PIXEL_DATA_MISMATCH.value: 1}


def test_duplicate_sop_instances_keep_the_first_file(tmp_path: Path) -> None:
    # Prepare: three files of one instance, the later two with other pixel values.
    ds = factory.image_dataset(factory.stored_values(seed=1))
    first = factory.write(ds, tmp_path / "a.dcm")
    for name, seed in (("b.dcm", 2), ("c.dcm", 3)):
        copy = dcmread(first)
        copy.PixelData = factory.stored_values(seed=seed).astype("<u2").tobytes()
        copy.save_as(tmp_path / name)

    # Execute
    records, report = index_folder(tmp_path)

    # Assert
    assert [record.path for record in records] == [first]
    assert report.skipped_by_reason == {SkipReason.DUPLICATE.value: 2}
    assert report.summary()["skipped_duplicate"] == 2


def test_site_without_usable_data_fails_with_one_clear_line(tmp_path: Path) -> None:
    # Prepare
    source = factory.write(factory.image_dataset(factory.stored_values()), tmp_path / "a.dcm")
    site = tmp_path / "site"
    factory.truncated(source, site / "cut-1.dcm")
    factory.truncated(source, site / "cut-2.dcm", keep=0.5)
    factory.structured_report(site / "sr.dcm")
    (site / "empty").mkdir()
    _, report = index_folder(site)
    _, empty = index_folder(site / "empty")

    # Execute
    with pytest.raises(DataError) as info:
        report.require_usable()
    with pytest.raises(DataError) as nothing:
        empty.require_usable()

    # Assert
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("site has no usable DICOM images (3 files, 0 usable images, ")
    assert f"{SkipReason.TRUNCATED.value} 2, {SkipReason.NON_IMAGE.value} 1" in message
    assert "medfleet data check" in message
    assert str(site) not in message and "cut-1" not in message
    assert "holds no files" in str(nothing.value)


def test_site_with_usable_data_passes_the_check(tmp_path: Path) -> None:
    # Prepare
    factory.write(factory.image_dataset(factory.stored_values()), tmp_path / "a.dcm")
    factory.random_bytes(tmp_path / "noise.bin")
    _, report = index_folder(tmp_path)

    # Execute
    report.require_usable()

    # Assert
    assert report.headline() == f"2 files, 1 usable images, 1 skipped ({SkipReason.NOT_DICOM} 1)"
