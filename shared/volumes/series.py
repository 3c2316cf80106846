"""Assemble a DICOM series of single-frame slices into one (x, y, z) volume."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from shared.dicom import load_image
from shared.errors import DataError
from shared.volumes.geometry import SliceStack, stack_slices, voxel_to_patient

__all__ = ["SeriesVolume", "load_series", "read_slice_headers", "to_volume_axes"]


@dataclass(frozen=True)
class SeriesVolume:
    """A series as a volume, with what a SEG needs to be laid on the same grid.

    Attributes
    ----------
    array : numpy.ndarray
        float32 (x, y, z) in modality units: axis 0 along a row (DICOM column index),
        axis 1 along a column (row index), axis 2 by ascending position on the normal.
    stack : SliceStack
        Slice order, spacing and directions.
    headers : tuple[pydicom.dataset.Dataset, ...]
        Slice headers in volume order (pixel data not loaded).
    """

    array: np.ndarray
    stack: SliceStack
    headers: tuple[Dataset, ...]

    @property
    def sop_instance_uids(self) -> list[str]:
        """SOP Instance UIDs of the slices, in volume (z) order."""
        return [str(ds.SOPInstanceUID) for ds in self.headers]

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-to-patient (LPS, mm) affine of `array`; see `voxel_to_patient`."""
        return voxel_to_patient(self.stack, self.headers[0].ImagePositionPatient)


def read_slice_headers(paths: Sequence[Path]) -> list[Dataset]:
    """Read the headers (no pixels) of single-frame slice files.

    Raises
    ------
    DataError
        When a file is unreadable or holds a multi-frame image.
    """
    headers: list[Dataset] = []
    for path in paths:
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (OSError, InvalidDicomError, ValueError, EOFError) as err:
            raise DataError("a slice of the DICOM series could not be read") from err
        if int(ds.get("NumberOfFrames") or 1) != 1:
            raise DataError("multi-frame DICOM images are not supported as volume slices")
        headers.append(ds)
    return headers


def to_volume_axes(frames: np.ndarray) -> np.ndarray:
    """Turn frames stacked as (z, rows, columns) into the volume layout (x, y, z)."""
    return np.ascontiguousarray(np.transpose(frames, (2, 1, 0)))


def load_series(paths: Sequence[Path]) -> SeriesVolume:
    """Load the slices of one series as a volume ordered along the slice normal.

    Parameters
    ----------
    paths : Sequence[Path]
        The series' slice files, in any order.

    Returns
    -------
    SeriesVolume
        The float32 volume (rescale applied), its geometry and its ordered headers.

    Raises
    ------
    DataError
        When slices are unreadable or do not form one regular volume.
    """
    headers = read_slice_headers(paths)
    stack = stack_slices(headers)
    frames = np.stack([load_image(Path(paths[i])) for i in stack.order])
    return SeriesVolume(
        array=to_volume_axes(frames).astype(np.float32, copy=False),
        stack=stack,
        headers=tuple(headers[i] for i in stack.order),
    )
