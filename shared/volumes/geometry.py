"""Slice geometry of a DICOM series: order along the slice normal, spacing, consistency."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from shared.errors import DataError

__all__ = ["SliceStack", "stack_slices", "voxel_to_patient"]

_PLANE_ATTRIBUTES = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing")
# Direction cosines are stored as decimal strings: allow their rounding.
_ORIENTATION_TOLERANCE = 1e-4
# Relative deviation of one slice gap from the median gap that still counts as uniform.
_GAP_TOLERANCE = 0.01


@dataclass(frozen=True)
class SliceStack:
    """Where the slices of one series lie, in the order the volume stacks them.

    Attributes
    ----------
    order : tuple[int, ...]
        Indices of the input slices, sorted by ascending position along the normal.
    spacing : tuple[float, float, float]
        Voxel size in mm along the volume axes: along a row (column spacing), along a
        column (row spacing), and between slice centres along the normal.
    row_direction, column_direction, normal : numpy.ndarray
        Unit vectors in patient coordinates (LPS); normal = row x column direction.
    positions : numpy.ndarray
        Sorted slice positions along the normal, in mm.
    """

    order: tuple[int, ...]
    spacing: tuple[float, float, float]
    row_direction: np.ndarray
    column_direction: np.ndarray
    normal: np.ndarray
    positions: np.ndarray


def stack_slices(headers: Sequence[Dataset]) -> SliceStack:
    """Order the single-frame slices of one series along their common normal.

    Parameters
    ----------
    headers : Sequence[pydicom.dataset.Dataset]
        Headers of the series' slices, in any order (file names and InstanceNumber
        are ignored: only ImagePositionPatient decides).

    Returns
    -------
    SliceStack
        Slice order and voxel spacing; the slice gap comes from the positions, never
        from SliceThickness (slices may overlap or leave gaps).

    Raises
    ------
    DataError
        When a slice lacks its plane attributes, or slices differ in orientation,
        size or pixel spacing, share a position, are unevenly spaced or tilted.
    """
    if not headers:
        raise DataError("DICOM series has no slices")
    rows_cols, orientation, pixel_spacing = _common_plane(headers)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    points = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in headers])
    along = points @ normal
    order = np.argsort(along, kind="stable")
    gap = _slice_gap(along[order], headers[0])
    _check_stacked(points[order] - points[order[0]], normal, gap)
    return SliceStack(
        order=tuple(int(i) for i in order),
        spacing=(float(pixel_spacing[1]), float(pixel_spacing[0]), gap),
        row_direction=row_dir,
        column_direction=col_dir,
        normal=normal,
        positions=along[order],
    )


def voxel_to_patient(stack: SliceStack, first_position: Sequence[float]) -> np.ndarray:
    """Return the 4x4 affine from voxel indices (x, y, z) to patient coordinates (LPS, mm).

    Voxel (i, j, k) of the volume `stack` orders (see `SeriesVolume`) lies at
    ``first_position + i * dx * row + j * dy * column + k * dz * normal``: the columns of
    the affine are the direction cosines scaled by the spacing, its translation the
    ImagePositionPatient of the first slice in volume order (centre of its first pixel).

    Parameters
    ----------
    stack : SliceStack
        The series' directions and spacing.
    first_position : Sequence[float]
        ImagePositionPatient of the slice at ``stack.order[0]``.

    Returns
    -------
    numpy.ndarray
        float64 (4, 4) affine, as MONAI's ``MetaTensor.affine`` expects (here in LPS).
    """
    affine = np.eye(4)
    directions = (stack.row_direction, stack.column_direction, stack.normal)
    for axis, (direction, size) in enumerate(zip(directions, stack.spacing, strict=True)):
        affine[:3, axis] = np.asarray(direction, dtype=float) * size
    affine[:3, 3] = [float(v) for v in first_position]
    return affine


def _common_plane(headers: Sequence[Dataset]) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """Return (rows, columns), orientation and pixel spacing shared by every slice."""
    first = headers[0]
    try:
        size = (int(first.Rows), int(first.Columns))
        orientation = np.array([float(v) for v in first.ImageOrientationPatient])
        spacing = np.array([float(v) for v in first.PixelSpacing])
        for ds in headers:
            if any(ds.get(name) in (None, "") for name in _PLANE_ATTRIBUTES):
                raise DataError("DICOM slice lacks its image plane attributes; not a volume")
            if (int(ds.Rows), int(ds.Columns)) != size:
                raise DataError("DICOM series mixes slice sizes; export one volume per series")
            other = np.array([float(v) for v in ds.ImageOrientationPatient])
            if orientation.shape != (6,) or other.shape != (6,):
                raise DataError("DICOM image orientation must hold six direction cosines")
            if np.abs(other - orientation).max() > _ORIENTATION_TOLERANCE:
                raise DataError("DICOM series mixes slice orientations; not one volume")
            if not np.allclose([float(v) for v in ds.PixelSpacing], spacing, rtol=1e-4):
                raise DataError("DICOM series mixes pixel spacings; not one volume")
    except (AttributeError, TypeError, ValueError) as err:
        raise DataError("DICOM slice has missing or malformed image plane attributes") from err
    if spacing.shape != (2,) or spacing.min() <= 0:
        raise DataError("DICOM pixel spacing must be two positive numbers")
    return size, orientation, spacing


def _slice_gap(positions: np.ndarray, first: Dataset) -> float:
    """Return the uniform distance between sorted slice positions (mm)."""
    if len(positions) == 1:
        # One slice has no gap: its thickness is the only hint of its extent.
        return float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
    gaps = np.diff(positions)
    if gaps.min() < 1e-3:
        raise DataError("two DICOM slices share one position; remove duplicate slices")
    median = float(np.median(gaps))
    if np.abs(gaps - median).max() > _GAP_TOLERANCE * median + 1e-3:
        raise DataError("DICOM slices are unevenly spaced (missing slices?); not one volume")
    return float(np.mean(gaps))


def _check_stacked(offsets: np.ndarray, normal: np.ndarray, gap: float) -> None:
    """Raise when slices drift in-plane (gantry tilt): the grid would not be rectilinear."""
    in_plane = offsets - np.outer(offsets @ normal, normal)
    if np.linalg.norm(in_plane, axis=1).max() > 0.01 * gap + 1e-3:
        raise DataError("DICOM slices are not stacked along their normal (tilted gantry?)")
