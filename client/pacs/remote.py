"""What sync and store need from a PACS, whichever protocol it speaks (DIMSE or DICOMweb)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from client.pacs.config import PacsConfig, SavedQuery
from shared.errors import MedFleetError

__all__ = [
    "InstanceSink",
    "PacsUnavailable",
    "Remote",
    "StoreResult",
    "StudyHit",
    "connect",
    "matches",
]

#: Receives each retrieved instance: (study UID, series UID, SOP instance UID, file bytes).
InstanceSink = Callable[[str, str, str, bytes], None]


class PacsUnavailable(MedFleetError):
    """The PACS did not answer, refused the association or request, or broke off."""


@dataclass(frozen=True)
class StudyHit:
    """One study a query found, with the fields the saved query is checked against."""

    uid: str
    instances: int
    modalities: tuple[str, ...] = ()
    description: str = ""
    date: str = ""


@dataclass(frozen=True)
class StoreResult:
    """The PACS's answer to one stored file (DICOM status 0 is success)."""

    path: Path
    sop_instance_uid: str
    status: int

    @property
    def ok(self) -> bool:
        """True when the PACS accepted the instance (a warning status counts as stored)."""
        return self.status == 0 or 0xB000 <= self.status <= 0xBFFF


class Remote(Protocol):
    """A PACS connection: query studies, retrieve one, store files."""

    def find_studies(self, query: SavedQuery) -> list[StudyHit]: ...

    def has_body_part(self, study: str, query: SavedQuery) -> bool: ...

    def retrieve(self, study: str, sink: InstanceSink) -> bool:
        """Send each instance of `study` to `sink`; True when the PACS says all were sent."""
        ...

    def store(self, paths: Sequence[Path]) -> list[StoreResult]: ...


def connect(config: PacsConfig) -> Remote:
    """The remote for `config`: DICOMweb when it has a URL, else DIMSE."""
    if config.protocol == "dicomweb":
        from client.pacs.dicomweb import DicomwebRemote

        return DicomwebRemote(config)
    from client.pacs.dimse import DimseRemote

    return DimseRemote(config)


def matches(hit: StudyHit, query: SavedQuery) -> bool:
    """Check a found study against the saved query again, here.

    A PACS may ignore a matching key it does not support (many ignore Modalities in
    Study or the description's wildcards); what it returned is checked locally too.
    """
    if query.modality and hit.modalities and query.modality not in hit.modalities:
        return False
    if query.study_description and not _wildcard(query.study_description).fullmatch(
        hit.description
    ):
        return False
    if hit.date and query.date_from and hit.date < query.date_from:
        return False
    return not (hit.date and query.date_to and hit.date > query.date_to)


def _wildcard(pattern: str) -> re.Pattern[str]:
    """DICOM wildcard matching (PS3.4 C.2.2.2.4): ``*`` any run, ``?`` one character."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)
