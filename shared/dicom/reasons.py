"""Fixed reasons for skipping a file while indexing a site's DICOM folder."""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["SkipReason", "reason_slug"]


class SkipReason(StrEnum):
    """Why a file under the data folder is not a usable image.

    The value is the human label shown in reports; ``slug`` is the short key used in
    ``DataReport.summary()``. Labels are fixed strings and never carry a header value.
    """

    NOT_DICOM = "not DICOM"
    TRUNCATED = "truncated/corrupt"
    UNREADABLE = "unreadable (I/O error or permission denied)"
    DICOMDIR = "DICOMDIR (media directory index)"
    NON_IMAGE = "non-image object (no pixel data, SR, RT, presentation state, ...)"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported transfer syntax (no decoder installed)"
    MISSING_ATTRIBUTE = "missing required attribute"
    INVALID_ATTRIBUTE = "invalid attribute value"
    UNSUPPORTED_PHOTOMETRIC = "unsupported photometric interpretation"
    IMAGE_TOO_LARGE = "image too large (Rows x Columns over the per-frame cap)"
    PIXEL_DATA_MISMATCH = "pixel data does not match Rows/Columns/frames"
    UNDECODABLE = "compressed pixel data cannot be decoded (broken codestream)"
    DUPLICATE = "duplicate SOP instance"

    @property
    def slug(self) -> str:
        """Short snake_case key, e.g. ``not_dicom``."""
        return self.name.lower()


def reason_slug(label: str) -> str:
    """Return the summary key of a reason label, also for labels outside `SkipReason`.

    Parameters
    ----------
    label : str
        A reason label such as ``"not DICOM"``.

    Returns
    -------
    str
        ``SkipReason(label).slug`` when the label is known, else a snake_case form of it.
    """
    try:
        return SkipReason(label).slug
    except ValueError:
        return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "other"
