"""What kind of DICOM object a file holds, from its SOP Class UID (image, SR, SEG, ...)."""

from __future__ import annotations

from enum import StrEnum

from pydicom.dataset import Dataset

__all__ = ["ObjectKind", "object_kind"]

_STORAGE = "1.2.840.10008.5.1.4.1.1."


class ObjectKind(StrEnum):
    """Families of DICOM objects the pipeline tells apart.

    Only ``IMAGE`` objects become `ImageRecord` today; a segmentation index can accept
    ``SEGMENTATION`` by adding its own record type without changing this classification.
    """

    IMAGE = "image"
    SEGMENTATION = "segmentation"
    STRUCTURED_REPORT = "structured report"
    PRESENTATION_STATE = "presentation state"
    RADIOTHERAPY = "radiotherapy object"
    WAVEFORM = "waveform"
    DOCUMENT = "encapsulated document"
    DIRECTORY = "media directory"
    OTHER = "other non-image object"


# Exact SOP classes first: some live under a family prefix but differ (RT Image is an image).
_EXACT: dict[str, ObjectKind] = {
    "1.2.840.10008.1.3.10": ObjectKind.DIRECTORY,
    _STORAGE + "481.1": ObjectKind.IMAGE,
    _STORAGE + "66.4": ObjectKind.SEGMENTATION,
    _STORAGE + "66.5": ObjectKind.SEGMENTATION,
    _STORAGE + "66": ObjectKind.OTHER,  # raw data
    _STORAGE + "66.1": ObjectKind.OTHER,  # spatial registration
    _STORAGE + "66.2": ObjectKind.OTHER,  # spatial fiducials
    _STORAGE + "66.3": ObjectKind.OTHER,  # deformable registration
    _STORAGE + "30": ObjectKind.OTHER,  # parametric map (float pixel data)
}
_PREFIXES: tuple[tuple[str, ObjectKind], ...] = (
    (_STORAGE + "88.", ObjectKind.STRUCTURED_REPORT),
    (_STORAGE + "11.", ObjectKind.PRESENTATION_STATE),
    (_STORAGE + "481.", ObjectKind.RADIOTHERAPY),
    (_STORAGE + "9.", ObjectKind.WAVEFORM),
    (_STORAGE + "104.", ObjectKind.DOCUMENT),
)


def object_kind(ds: Dataset, has_pixel_data: bool) -> ObjectKind:
    """Classify a dataset by its SOP Class UID, falling back on the presence of pixel data.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        Header of the object (pixel data need not be loaded).
    has_pixel_data : bool
        Whether the file holds a (7FE0,0010) Pixel Data element.

    Returns
    -------
    ObjectKind
        The object's family; unknown SOP classes count as images when they hold pixels.
    """
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta or {}).get("MediaStorageSOPClassUID", ""))
    if sop_class in _EXACT:
        return _EXACT[sop_class]
    for prefix, kind in _PREFIXES:
        if sop_class.startswith(prefix):
            return kind
    return ObjectKind.IMAGE if has_pixel_data else ObjectKind.OTHER
