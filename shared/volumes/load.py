"""Load one segmentation case as image and label volumes on one voxel grid."""

from __future__ import annotations

import numpy as np

from shared.errors import DataError
from shared.volumes.case import DICOM, NIFTI, SegCase
from shared.volumes.nifti import load_nifti_pair
from shared.volumes.seg_read import read_seg_labels
from shared.volumes.series import load_series

__all__ = ["load_case_channels", "load_volume_case"]


def load_volume_case(
    case: SegCase,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Load a case's image, label map and voxel spacing.

    Axis convention (both kinds): axis 0 runs along a DICOM row (column index, NIfTI i),
    axis 1 along a DICOM column (row index, NIfTI j), axis 2 along the slice normal
    row x column (NIfTI k, reversed for left-handed NIfTI affines). This is the layout
    of MONAI's PydicomReader/ITKReader; a NIfTI converted by `convert_nifti_sites` loads
    to the same arrays through either path.

    Parameters
    ----------
    case : SegCase
        A case from `index_segmentation_site`.

    Returns
    -------
    image : numpy.ndarray
        float32 (H, W, D) in modality units (rescale applied).
    label : numpy.ndarray
        uint8 (H, W, D), 0 background and k for segment number k.
    spacing : tuple[float, float, float]
        Voxel size in mm along the three axes.

    Raises
    ------
    DataError
        When the files do not form one image volume with a matching label.
    """
    if case.kind == NIFTI:
        if len(case.image) != 1:
            raise DataError("a NIfTI case needs exactly one image file")
        return load_nifti_pair(case.image[0], case.label)
    if case.kind == DICOM:
        series = load_series(case.image)
        return series.array, read_seg_labels(case.label, series), series.stack.spacing
    raise DataError(f"segmentation case kind must be '{DICOM}' or '{NIFTI}'")


def load_case_channels(
    case: SegCase,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Load a case as channel-first image (C, H, W, D), label (H, W, D) and spacing.

    A case of one series has one channel (`load_volume_case`). A case with `inputs`
    (`seg-inputs`) stacks its reference series, on its own grid, then each further
    series resampled onto that grid through the DICOM geometry (`stack_channels`); the
    label and spacing are those of the reference series.

    Raises
    ------
    DataError
        When a series does not form one volume or the label does not fit.
    """
    if not case.inputs:
        image, label, spacing = load_volume_case(case)
        return image[np.newaxis], label, spacing
    if case.kind != DICOM:
        raise DataError("only DICOM cases can combine several series")
    from shared.volumes.resample import stack_channels

    reference = load_series(case.image)
    label = read_seg_labels(case.label, reference)
    others = [load_series(paths) for paths in case.inputs]
    return stack_channels(reference, others), label, reference.stack.spacing
