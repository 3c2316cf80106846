"""Fuzz the indexer and loader with mutated valid files: skips and DataErrors, never a crash.

Mutations are bit flips, truncations, deleted elements and retyped elements (the value
bytes kept, the VR changed), applied to valid files of every encoding and colour kind.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from functools import cache
from pathlib import Path

import colour_factory as colour
import dicom_factory as factory
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmread, dcmwrite
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from shared.dicom import SkipReason, index_folder, load_image
from shared.dicom.index import clear_index_cache
from shared.errors import DataError

_BUILDERS = {
    "native": lambda p: factory.write(factory.image_dataset(factory.stored_values()), p),
    "implicit": lambda p: factory.write(
        factory.image_dataset(factory.stored_values()), p, implicit=True
    ),
    "big-endian": lambda p: factory.write(
        factory.image_dataset(factory.stored_values()), p, big_endian=True
    ),
    "multiframe": lambda p: factory.write(factory.image_dataset(factory.stored_values(3)), p),
    "rle": lambda p: factory.write_compressed(
        factory.image_dataset(factory.stored_values()), p, RLELossless
    ),
    "j2k": lambda p: factory.write_compressed(
        factory.image_dataset(factory.stored_values()), p, JPEG2000Lossless
    ),
    "jls": lambda p: factory.write_compressed(
        factory.image_dataset(factory.stored_values()), p, JPEGLSLossless
    ),
    "rgb": lambda p: colour.rgb_file(p)[0],
    "ybr-422": lambda p: colour.ybr_full_422_file(p)[0],
    "jpeg": lambda p: colour.jpeg_baseline_file(p)[0],
    "palette": lambda p: colour.palette_file(p)[0],
}
_VRS = ["US", "SS", "UL", "SL", "DS", "IS", "CS", "UI", "LO", "OB", "OW", "FD", "SQ", "UN"]
_REASONS = {reason.value for reason in SkipReason}


@cache
def valid_file(kind: str) -> bytes:
    """The bytes of one valid file of `kind` (built once per test session)."""
    with tempfile.TemporaryDirectory() as folder:
        return _BUILDERS[kind](Path(folder) / "valid.dcm").read_bytes()


def _flip(data: bytes, position: int, bit: int) -> bytes:
    out = bytearray(data)
    out[position % len(out)] ^= 1 << bit
    return bytes(out)


def _rewrite(data: bytes, index: int, vr: str | None) -> bytes:
    """Delete (vr None) or retype the `index`-th top-level element; unchanged if unwritable."""
    try:
        warnings.simplefilter("ignore")  # within the caller's catch_warnings
        ds = dcmread(io.BytesIO(data), force=True)
        tags = sorted(ds.keys())
        if not tags:
            return data
        tag = tags[index % len(tags)]
        if vr is None:
            del ds[tag]
        else:
            raw = ds.get_item(tag)
            ds._dict[tag] = raw._replace(VR=vr) if hasattr(raw, "_replace") else raw
        out = io.BytesIO()
        dcmwrite(out, ds)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - a mutation pydicom cannot write is just skipped
        return data


_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**20), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.floats(0.0, 1.0)),
    st.tuples(st.just("delete"), st.integers(0, 200)),
    st.tuples(st.just("retype"), st.integers(0, 200), st.sampled_from(_VRS)),
)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    """Apply each mutation in turn."""
    with warnings.catch_warnings():
        return _mutate(data, mutations)


def _mutate(data: bytes, mutations: list[tuple]) -> bytes:
    for mutation in mutations:
        if mutation[0] == "flip":
            data = _flip(data, mutation[1], mutation[2])
        elif mutation[0] == "cut":
            data = data[: int(len(data) * mutation[1])]
        else:
            data = _rewrite(data, mutation[1], mutation[2] if mutation[0] == "retype" else None)
        if not data:
            break
    return data


def check_never_crashes(data: bytes) -> None:
    """Index a folder holding `data`; every record must load, any load only DataError."""
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about what the fuzz broke
        path = Path(folder) / "mutant.dcm"
        path.write_bytes(data)
        clear_index_cache()
        records, report = index_folder(Path(folder))
        assert report.files == 1
        assert len(records) + report.skipped == 1
        assert set(report.skipped_by_reason) <= _REASONS
        for record in records:
            image = load_image(record.path)
            assert image.shape == (record.rows, record.columns)
            assert image.dtype == np.float32
            assert np.isfinite(image).all()
        if not records:
            with contextlib.suppress(DataError):  # a skipped file may still load, or not
                load_image(path)


_FUZZ = settings(
    deadline=None,
    database=None,  # no example database in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_KINDS = st.sampled_from(sorted(_BUILDERS))


@settings(_FUZZ, max_examples=150, derandomize=True)
@given(kind=_KINDS, mutations=st.lists(_MUTATION, min_size=1, max_size=3))
def test_mutated_files_are_skipped_or_loaded_never_a_crash(kind: str, mutations: list) -> None:
    check_never_crashes(mutate(valid_file(kind), mutations))


@pytest.mark.slow
@settings(_FUZZ, max_examples=3000)
@given(kind=_KINDS, mutations=st.lists(_MUTATION, min_size=1, max_size=4))
def test_many_mutated_files_never_crash(kind: str, mutations: list) -> None:
    check_never_crashes(mutate(valid_file(kind), mutations))


@pytest.mark.parametrize("kind", sorted(_BUILDERS))
def test_every_fuzz_seed_file_is_usable(kind: str) -> None:
    # Prepare / Execute
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "valid.dcm").write_bytes(valid_file(kind))
        records, report = index_folder(Path(folder))

    # Assert: mutations start from files the pipeline accepts.
    assert (len(records), report.skipped) == (1, 0)


def test_a_colour_image_flipped_to_signed_pixels_is_skipped_not_a_crash() -> None:
    # Prepare: what the long fuzz found: a bit flip set Pixel Representation to 1 on a
    # YBR_FULL_422 image, and pydicom's colour conversion refuses int8 pixels at load
    ds = dcmread(io.BytesIO(valid_file("ybr-422")))
    ds.PixelRepresentation = 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "signed.dcm"
        ds.save_as(path)
        clear_index_cache()
        records, report = index_folder(Path(folder))
        data = path.read_bytes()
    # Assert: skipped at indexing as an invalid value (colour pixels are unsigned)
    assert records == []
    assert report.skipped_by_reason == {SkipReason.INVALID_ATTRIBUTE.value: 1}
    check_never_crashes(data)
