"""Fixed reasons for leaving data out of a segmentation site's cases (never a header value)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SegSkipReason"]


class SegSkipReason(StrEnum):
    """Why files are not part of any segmentation case.

    Values are the labels counted in `shared.dicom.DataReport.skipped_by_reason`; series
    reasons count every file of the series, so counts stay counts of files.
    """

    SERIES_WITHOUT_SEG = "image series without segmentation"
    SEG_WITHOUT_SERIES = "segmentation without its source series"
    SEG_DUPLICATE = "second segmentation of one series"
    SEG_FRAME_OF_REFERENCE = "segmentation frame of reference differs from its series"
    SEG_UNREADABLE = "segmentation header unreadable"
    NIFTI_IMAGE_WITHOUT_LABEL = "NIfTI image without label"
    NIFTI_LABEL_WITHOUT_IMAGE = "NIfTI label without image"
    # With `seg-inputs`: every file of the study's series (and its SEG) counts.
    STUDY_LACKS_INPUT = "study lacks a series named by seg-inputs"
    STUDY_AMBIGUOUS_INPUT = "study has two series matching one seg-inputs entry"
    SEG_NOT_ON_REFERENCE = "segmentation not on the series of the first seg-inputs entry"
    INPUT_FRAME_OF_REFERENCE = "input series frame of reference differs from the labelled one"
