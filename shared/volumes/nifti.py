"""Read NIfTI volumes on the same voxel-axis convention as DICOM series (right-handed grid)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from shared.errors import DataError

__all__ = ["NiftiVolume", "label_map", "list_nifti", "load_nifti_pair", "read_nifti"]

_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class NiftiVolume:
    """A 3D NIfTI volume and its voxel-to-RAS affine, third axis made right-handed.

    Attributes
    ----------
    array : numpy.ndarray
        The voxel array in file axis order (i, j, k), k reversed when the file's axes
        are left-handed, so that k runs along i x j like the DICOM slice normal.
    affine : numpy.ndarray
        4x4 voxel-index to RAS (mm) matrix of `array`.
    """

    array: np.ndarray
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes."""
        sizes = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(sizes[0]), float(sizes[1]), float(sizes[2]))


def read_nifti(path: Path) -> NiftiVolume:
    """Read a 3D NIfTI file (scaling applied) onto the right-handed voxel grid.

    Raises
    ------
    DataError
        When the file cannot be read or is not a single 3D volume.
    """
    try:
        image = cast(nib.spatialimages.SpatialImage, nib.load(str(path)))
        array = np.asanyarray(image.dataobj)
        affine = np.asarray(image.affine, dtype=np.float64)
    except (OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError) as err:
        raise DataError("NIfTI file could not be read") from err
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DataError("NIfTI file is not a single 3D volume (multi-channel is unsupported)")
    if np.linalg.det(affine[:3, :3]) < 0:
        # Reverse k so that i x j points along k, as a DICOM slice normal does.
        last = array.shape[2] - 1
        affine = affine @ np.array(
            [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, last], [0, 0, 0, 1]], dtype=np.float64
        )
        array = array[:, :, ::-1]
    return NiftiVolume(np.ascontiguousarray(array), affine)


def load_nifti_pair(
    image_path: Path, label_path: Path
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Load an image NIfTI and its label NIfTI on one grid.

    Returns
    -------
    image : numpy.ndarray
        float32 (i, j, k).
    label : numpy.ndarray
        uint8 (i, j, k) class indices.
    spacing : tuple[float, float, float]
        Voxel size in mm.

    Raises
    ------
    DataError
        When the grids differ or the label holds values other than 0..255 integers.
    """
    image, label = read_nifti(image_path), read_nifti(label_path)
    if image.array.shape != label.array.shape or not np.allclose(
        image.affine, label.affine, atol=1e-3
    ):
        raise DataError("NIfTI label grid differs from its image; resample the label")
    return image.array.astype(np.float32), label_map(label.array), image.spacing


def label_map(values: np.ndarray) -> np.ndarray:
    """Return `values` as uint8 class indices, refusing fractions and out-of-range values."""
    if values.size and (values.min() < 0 or values.max() > 255):
        raise DataError("NIfTI label values must be class indices 0..255")
    labels = values.astype(np.uint8)
    if not np.array_equal(labels, values):
        raise DataError("NIfTI label values must be whole class indices")
    return labels


def list_nifti(folder: Path) -> dict[str, Path]:
    """Map case name (file name without .nii/.nii.gz) to its file; hidden files left out."""
    found = {}
    for path in sorted(Path(folder).iterdir()):
        suffix = next((s for s in _SUFFIXES if path.name.endswith(s)), None)
        if suffix and not path.name.startswith(".") and path.is_file():
            found[path.name[: -len(suffix)]] = path
    return found
