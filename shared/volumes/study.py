"""Several series of one study as one case: find each `seg-inputs` series in the study."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from shared.dicom import DataReport, ImageRecord
from shared.series_inputs import SeriesPattern
from shared.volumes.case import DICOM, SegCase, case_key
from shared.volumes.index import labelled_series, skip_series
from shared.volumes.reasons import SegSkipReason

__all__ = ["SeriesHeader", "index_study_cases", "read_series_header", "select_inputs"]

SEG_MODALITY = "SEG"
_TAGS = ["StudyInstanceUID", "Modality", "SeriesDescription", "FrameOfReferenceUID"]


@dataclass(frozen=True)
class SeriesHeader:
    """The study-level facts of one series that matching needs (read from one file)."""

    study_uid: str
    modality: str
    description: str
    frame_of_reference: str


def read_series_header(path: Path) -> SeriesHeader:
    """Read Study UID, Modality, Series Description and Frame of Reference of one slice.

    Only those tags are parsed (no pixels); an unreadable file gives empty values, which
    no pattern matches.
    """
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (OSError, InvalidDicomError, ValueError, EOFError):
        return SeriesHeader("", "", "", "")
    return SeriesHeader(*(str(ds.get(tag, "") or "") for tag in _TAGS))


def select_inputs(
    study: Mapping[str, SeriesHeader], inputs: Sequence[SeriesPattern]
) -> list[str] | SegSkipReason:
    """Pick the one series of `study` that each pattern names, in pattern order.

    Parameters
    ----------
    study : Mapping[str, SeriesHeader]
        The study's image series by Series Instance UID.
    inputs : Sequence[SeriesPattern]
        The `seg-inputs` entries; the first names the reference series.

    Returns
    -------
    list[str] or SegSkipReason
        One Series Instance UID per pattern; or why the study cannot give them: a pattern
        matches no series, or two (or one series matches two patterns), or a series lies
        in another frame of reference than the reference one (it could not be resampled).
    """
    chosen = []
    for pattern in inputs:
        found = [
            uid
            for uid in sorted(study)
            if pattern.matches(study[uid].modality, study[uid].description)
        ]
        if not found:
            return SegSkipReason.STUDY_LACKS_INPUT
        if len(found) > 1:
            return SegSkipReason.STUDY_AMBIGUOUS_INPUT
        chosen.append(found[0])
    if len(set(chosen)) != len(chosen):
        return SegSkipReason.STUDY_AMBIGUOUS_INPUT
    frames = {study[uid].frame_of_reference for uid in chosen}
    if len(frames) != 1:
        return SegSkipReason.INPUT_FRAME_OF_REFERENCE
    return chosen


def series_by_study(
    series: Mapping[str, list[ImageRecord]],
) -> dict[str, dict[str, SeriesHeader]]:
    """Group series by Study Instance UID, reading one file's header per series."""
    studies: dict[str, dict[str, SeriesHeader]] = defaultdict(dict)
    for uid in sorted(series):
        header = read_series_header(min(record.path for record in series[uid]))
        studies[header.study_uid][uid] = header
    return studies


def index_study_cases(
    root: Path, inputs: Sequence[SeriesPattern]
) -> tuple[list[SegCase], DataReport]:
    """One case per labelled study: its SEG, the reference series and the other inputs.

    A SEG is used when its study holds exactly one series per `inputs` entry and the SEG
    labels the series of the first entry. Otherwise every file of the study's series and
    the SEG are counted under the reason (`SegSkipReason`); series of no case count as
    ``image series without segmentation``, as without `seg-inputs`.

    Returns
    -------
    cases : list[SegCase]
        Sorted by `case_id` (the reference series' key, as for a single series).
    report : DataReport
        ``series`` is the number of cases.
    """
    series, matched, report = labelled_series(root)
    studies = series_by_study(series)
    study_of = {uid: study for study, members in studies.items() for uid in members}
    used: set[str] = set()
    left_out: dict[str, SegSkipReason] = {}
    cases = []
    for reference in sorted(matched):
        outcome = select_inputs(studies[study_of[reference]], inputs)
        if not isinstance(outcome, SegSkipReason) and outcome[0] != reference:
            outcome = SegSkipReason.SEG_NOT_ON_REFERENCE
        if isinstance(outcome, SegSkipReason):
            _skip_seg(report, matched[reference], outcome)
            left_out.update({uid: outcome for uid in studies[study_of[reference]]})
            continue
        used.update(outcome)
        files = [tuple(sorted(r.path for r in series[uid])) for uid in outcome]
        key = series[reference][0].patient_key
        cases.append(
            SegCase(
                case_key(f"series:{reference}"),
                key,
                DICOM,
                files[0],
                matched[reference],
                tuple(files[1:]),
            )
        )
    for uid, members in series.items():
        if uid not in used:
            skip_series(report, members, left_out.get(uid, SegSkipReason.SERIES_WITHOUT_SEG))
    report.series = len(cases)
    return sorted(cases, key=lambda case: case.case_id), report


def _skip_seg(report: DataReport, path: Path, reason: SegSkipReason) -> None:
    """Move a matched SEG file from usable to skipped under `reason`."""
    report.usable_by_modality[SEG_MODALITY] -= 1
    if not report.usable_by_modality[SEG_MODALITY]:
        del report.usable_by_modality[SEG_MODALITY]
    report.add_skip(path, reason.value)
