"""One segmentation case of a site: an image (DICOM series or NIfTI file) and its label."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SegCase", "case_key"]

DICOM = "dicom"
NIFTI = "nifti"


@dataclass(frozen=True)
class SegCase:
    """An image volume and its label map, found by `index_segmentation_site`.

    Cases stay on the site: `image` and `label` are site-local paths. `case_id` and
    `patient_key` are opaque hashes, fit for splits and logs, never a patient ID or path.

    Attributes
    ----------
    case_id : str
        Opaque key of the case (hash of the series UID, or of the NIfTI file name).
    patient_key : str
        Opaque key grouping a patient's cases (hash of PatientID, or of the NIfTI stem).
    kind : str
        ``"dicom"`` (slice files + DICOM SEG) or ``"nifti"`` (image + label NIfTI).
    image : tuple[Path, ...]
        The series' slice files (any order), or one NIfTI file.
    label : Path
        The DICOM SEG file or the label NIfTI file.
    inputs : tuple[tuple[Path, ...], ...]
        With `seg-inputs`: the slice files of each further series of the study, in
        channel order after `image` (the reference series the SEG labels); else empty.
    """

    case_id: str
    patient_key: str
    kind: str
    image: tuple[Path, ...]
    label: Path
    inputs: tuple[tuple[Path, ...], ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file the case reads: its series (all of them) and its label."""
        return (*self.image, *(path for series in self.inputs for path in series), self.label)


def case_key(source: str) -> str:
    """Return a stable 16-hex-character opaque key of `source` (a UID or a file stem).

    Parameters
    ----------
    source : str
        The site-local identity of the case.

    Returns
    -------
    str
        A keyed BLAKE2b hash; pseudonymous, so it stays on the site like its source.
    """
    digest = hashlib.blake2b(source.encode(), digest_size=8, person=b"medfleet-case")
    return digest.hexdigest()
