"""DICOMweb with dicomweb-client: QIDO-RS the saved query, WADO-RS a study, STOW-RS results."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread, dcmwrite

from client.pacs.config import PacsConfig, SavedQuery
from client.pacs.remote import InstanceSink, PacsUnavailable, StoreResult, StudyHit

__all__ = ["DicomwebRemote"]

_STUDY_FIELDS = ["NumberOfStudyRelatedInstances", "ModalitiesInStudy", "StudyDescription"]


class DicomwebRemote:
    """A PACS reached over DICOMweb (HTTP): the QIDO, WADO and STOW services of one URL."""

    def __init__(self, config: PacsConfig) -> None:
        self.config = config
        self.client = DICOMwebClient(url=config.dicomweb, timeout=config.timeout)

    def find_studies(self, query: SavedQuery) -> list[StudyHit]:
        """QIDO-RS ``/studies`` with the query's modality and dates.

        The description pattern is matched here (`remote.matches`), not sent: in a URL
        its ``*`` and spaces are percent-encoded, which servers decode differently
        (Orthanc 1.10 matches the escapes literally and finds nothing).
        """
        filters = {"ModalitiesInStudy": query.modality, "StudyDate": query.date_range}
        with self._http("query"):
            found = self.client.search_for_studies(
                fields=_STUDY_FIELDS,
                search_filters={k: v for k, v in filters.items() if v},
            )
        return [
            StudyHit(
                uid=_first(entry, "0020000D"),
                instances=int(_first(entry, "00201208") or 0),
                modalities=tuple(_values(entry, "00080061")),
                description=_first(entry, "00081030"),
                date=_first(entry, "00080020"),
            )
            for entry in found
        ]

    def has_body_part(self, study: str, query: SavedQuery) -> bool:
        """Whether a series of `study` (of the query's modality) has the query's body part."""
        filters = {"Modality": query.modality} if query.modality else {}
        with self._http("query"):
            series = self.client.search_for_series(
                study, fields=["BodyPartExamined"], search_filters=filters
            )
        return any(_first(entry, "00180015").upper() == query.body_part for entry in series)

    def retrieve(self, study: str, sink: InstanceSink) -> bool:
        """WADO-RS the study as DICOM files; each instance goes to `sink` as it arrives.

        Returns True when the multipart response was read to its end.
        """
        with self._http("retrieve"):
            for ds in self.client.iter_study(study):
                buffer = io.BytesIO()
                dcmwrite(buffer, ds, enforce_file_format=True)
                sink(
                    str(ds.StudyInstanceUID),
                    str(ds.SeriesInstanceUID),
                    str(ds.SOPInstanceUID),
                    buffer.getvalue(),
                )
        return True

    def store(self, paths: Sequence[Path]) -> list[StoreResult]:
        """STOW-RS the files (one request) and return the status per file."""
        datasets = [dcmread(path) for path in paths]
        with self._http("store"):
            response = self.client.store_instances(datasets)
        # The response lists only what failed (Failed SOP Sequence, with its reason).
        failed = {
            str(item.get("ReferencedSOPInstanceUID", "")): int(item.get("FailureReason", 0xC000))
            for item in (response.get("FailedSOPSequence") or [])
        }
        return [
            StoreResult(Path(path), str(ds.SOPInstanceUID), failed.get(str(ds.SOPInstanceUID), 0))
            for path, ds in zip(paths, datasets, strict=True)
        ]

    @contextmanager
    def _http(self, what: str) -> Iterator[None]:
        try:
            yield
        except (requests.RequestException, OSError) as err:
            raise PacsUnavailable(
                f"PACS '{self.config.name}' did not complete the {what} over DICOMweb: check "
                "its dicomweb URL and that it is running",
                local=f"{self.config.dicomweb}: {type(err).__name__}: {err}",
            ) from None


def _values(entry: Any, tag: str) -> list[str]:
    values = (entry or {}).get(tag, {}).get("Value", [])
    return [str(v.get("Alphabetic", "")) if isinstance(v, dict) else str(v) for v in values]


def _first(entry: Any, tag: str) -> str:
    values = _values(entry, tag)
    return values[0] if values else ""
