"""SEG round trip: a known mask written as DICOM SEG loads back identically on its grid."""

from __future__ import annotations

import pickle
from pathlib import Path

import highdicom as hd
import numpy as np
from monai.data import CacheDataset
from monai.transforms import Compose
from pydicom import dcmread

from shared.volumes import LoadSegCased, SegCase, index_segmentation_site, load_volume_case

from .volume_factory import SEGMENT_LABELS, make_mask, make_volume, write_case


def test_seg_round_trip_keeps_mask_geometry_and_spacing(tmp_path: Path) -> None:
    # Prepare
    volume, mask = make_volume(), make_mask()
    write_case(tmp_path, volume, mask, spacing=(0.8, 0.9, 2.5))

    # Execute
    cases, _ = index_segmentation_site(tmp_path)
    image, label, spacing = load_volume_case(cases[0])

    # Assert
    assert len(cases) == 1 and cases[0].kind == "dicom"
    assert label.dtype == np.uint8 and image.dtype == np.float32
    np.testing.assert_array_equal(label, mask)
    assert image.shape == volume.shape
    np.testing.assert_allclose(image, volume, atol=0.01)
    np.testing.assert_allclose(spacing, (0.8, 0.9, 2.5), rtol=1e-6)


def test_written_seg_describes_each_class_as_a_binary_segment(tmp_path: Path) -> None:
    # Prepare
    _, seg_path, _ = write_case(tmp_path, make_volume(), make_mask())

    # Execute
    seg = hd.seg.segread(seg_path)

    # Assert
    assert seg.SegmentationType == "BINARY"
    assert seg.segment_numbers == [1, 2]
    for number, name in enumerate(SEGMENT_LABELS, start=1):
        item = seg.get_segment_description(number)
        assert item.segment_label == name and item.SegmentDescription == name
        assert item.algorithm_type.value == "MANUAL"


def test_load_seg_cased_composes_with_cache_dataset_and_pickles(
    tmp_path: Path,
) -> None:
    # Prepare
    mask = make_mask()
    write_case(tmp_path, make_volume(), mask)
    cases, _ = index_segmentation_site(tmp_path)
    transform = Compose([LoadSegCased(label_dtype="int64")])

    # Execute
    restored = pickle.loads(pickle.dumps(transform))
    item = CacheDataset([{"case": cases[0]}], transform=restored, progress=False)[0]

    # Assert
    assert isinstance(item["case"], SegCase)
    assert item["image"].shape == (1, *mask.shape) and item["image"].dtype == np.float32
    assert item["label"].dtype == np.int64
    np.testing.assert_array_equal(item["label"][0], mask)
    np.testing.assert_allclose(item["spacing"], (0.8, 0.9, 2.5))


def test_seg_without_source_references_is_placed_by_plane_position(tmp_path: Path) -> None:
    # Prepare: drop every per-frame source reference, as some exporters do
    volume, mask = make_volume(), make_mask()
    series_dir, seg_path, _ = write_case(tmp_path, volume, mask)
    seg = dcmread(seg_path)
    for group in seg.PerFrameFunctionalGroupsSequence:
        del group.DerivationImageSequence
    seg.save_as(seg_path)
    files = tuple(sorted(series_dir.glob("*.dcm")))

    # Execute
    _, label, _ = load_volume_case(SegCase("c", "p", "dicom", files, seg_path))

    # Assert
    np.testing.assert_array_equal(label, mask)
