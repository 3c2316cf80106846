"""Read a DICOM SEG onto the grid of its source series as one label map (0 = background)."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.pixels import pixel_array

from shared.errors import DataError
from shared.volumes.series import SeriesVolume, to_volume_axes

__all__ = ["read_seg_labels"]

# Label maps are uint8: segment numbers above this cannot be class indices.
MAX_SEGMENTS = 255
_HIGHDICOM_ERRORS = (ValueError, KeyError, AttributeError, IndexError, RuntimeError)


def read_seg_labels(path: Path, series: SeriesVolume) -> np.ndarray:
    """Return the SEG's label map on the series grid, uint8 (x, y, z).

    Frames are matched to slices by their referenced SOP Instance UIDs; SEGs whose
    frames do not reference source instances are matched by plane position instead.
    A voxel's value is the number of the segment covering it (segment number = class).

    Parameters
    ----------
    path : Path
        The DICOM SEG file.
    series : SeriesVolume
        The source series, as loaded by `load_series`.

    Returns
    -------
    numpy.ndarray
        uint8 label map with the shape of ``series.array``.

    Raises
    ------
    DataError
        When the SEG cannot be read, does not fit the series grid, or segments overlap.
    """
    try:
        seg = hd.seg.segread(path)
    except (OSError, *_HIGHDICOM_ERRORS) as err:
        raise DataError("DICOM SEG could not be read") from err
    if (int(seg.Rows), int(seg.Columns)) != series.array.shape[1::-1]:
        raise DataError("DICOM SEG frame size differs from its source series")
    if max(seg.segment_numbers, default=0) > MAX_SEGMENTS:
        raise DataError(f"DICOM SEG has segment numbers above {MAX_SEGMENTS}")
    try:
        frames = seg.get_pixels_by_source_instance(
            series.sop_instance_uids,
            combine_segments=True,
            assert_missing_frames_are_empty=True,
            dtype=np.uint8,
        )
    except _HIGHDICOM_ERRORS:
        # No usable source references (or overlap): place frames by plane position,
        # which also reports overlapping segments.
        frames = _frames_by_position(seg, series)
    return to_volume_axes(frames)


def _frames_by_position(seg: hd.seg.Segmentation, series: SeriesVolume) -> np.ndarray:
    """Place each SEG frame on the slice at its plane position (z, rows, columns)."""
    stack = series.stack
    shape = (len(series.headers), *series.array.shape[1::-1])
    labels = np.zeros(shape, dtype=np.uint8)
    origin = np.array([float(v) for v in series.headers[0].ImagePositionPatient])
    try:
        pixels = pixel_array(seg).reshape(-1, *shape[1:])
        groups = seg.PerFrameFunctionalGroupsSequence
        for frame, group in zip(pixels, groups, strict=True):
            position = np.array(
                [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
            )
            segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
            offset = position - origin
            index = int(np.rint((offset @ stack.normal) / stack.spacing[2]))
            in_plane = offset - (offset @ stack.normal) * stack.normal
            if not 0 <= index < shape[0] or np.linalg.norm(in_plane) > 1e-2 * stack.spacing[0]:
                raise DataError("DICOM SEG frame lies off its source series grid")
            covered = frame > 0
            if np.any(labels[index][covered]):
                raise DataError("DICOM SEG segments overlap; export one label per voxel")
            labels[index][covered] = segment
    except (AttributeError, IndexError, KeyError, ValueError) as err:
        raise DataError("DICOM SEG frames neither reference nor locate source slices") from err
    return labels
