"""`medfleet predict --store`: send the SEG, SR and captures predict wrote back to the PACS."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from client.pacs.config import PacsConfig
from client.pacs.remote import Remote, StoreResult, connect
from shared.errors import DataError

__all__ = ["StoreSummary", "store_results"]


@dataclass(frozen=True)
class StoreSummary:
    """What the PACS answered to each file, and how long the whole store took."""

    results: list[StoreResult]
    seconds: float

    @property
    def stored(self) -> int:
        """Files the PACS accepted."""
        return sum(result.ok for result in self.results)


def store_results(
    paths: Sequence[Path], config: PacsConfig, remote: Remote | None = None
) -> StoreSummary:
    """C-STORE or STOW-RS the DICOM files `paths` to the PACS of `config`.

    Each file must be a DICOM object of a study (predict's SEG, SR and Secondary Capture
    carry their source study's Study Instance UID, so the viewer files them with it).

    Raises
    ------
    DataError
        When a file is not DICOM or names no study (nothing is sent then).
    PacsUnavailable
        When the PACS cannot be reached.
    """
    files = [Path(path) for path in paths if Path(path).suffix == ".dcm"]
    for path in files:
        try:
            ds = dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        except (OSError, InvalidDicomError) as err:
            raise DataError(
                "a predict output to store is not a DICOM file", local=f"{path}: {err}"
            ) from None
        if not ds.get("StudyInstanceUID"):
            raise DataError("a predict output to store names no study", local=str(path))
    started = time.monotonic()
    results = (remote or connect(config)).store(files) if files else []
    return StoreSummary(results, time.monotonic() - started)
