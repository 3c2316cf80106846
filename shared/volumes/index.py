"""Index a segmentation site: pair image volumes with their labels, report what is left out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from shared.dicom import DataReport, ImageRecord, SkipReason, index_folder
from shared.dicom.records import patient_key
from shared.errors import ConfigError
from shared.series_inputs import SeriesPattern
from shared.volumes.case import DICOM, NIFTI, SegCase, case_key
from shared.volumes.nifti import list_nifti
from shared.volumes.reasons import SegSkipReason

__all__ = ["index_segmentation_site", "labelled_series", "skip_series"]

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
SEG_MODALITY = "SEG"


@dataclass(frozen=True)
class _SegHeader:
    """What matching needs from a SEG file's header."""

    path: Path
    series_uids: frozenset[str]
    instance_uids: frozenset[str]
    frame_of_reference: str


def index_segmentation_site(
    root: Path, inputs: Sequence[SeriesPattern] = ()
) -> tuple[list[SegCase], DataReport]:
    """Find a site's segmentation cases: DICOM series with a SEG, or NIfTI pairs.

    A folder holding ``imagesTr`` and ``labelsTr`` is read as NIfTI pairs matched by
    file name. Any other folder is walked as DICOM (headers only): image instances are
    grouped by series and each SEG is matched to the series it references
    (ReferencedSeriesSequence, else its source instances) with the same frame of
    reference. Left-out files are counted under fixed reasons (`SegSkipReason` and
    `shared.dicom.SkipReason`); a series without SEG counts all of its files.

    Parameters
    ----------
    root : Path
        The site's data folder.
    inputs : Sequence[SeriesPattern]
        With `seg-inputs`: the series of each study to stack, the first the labelled
        one (see `shared.volumes.study.index_study_cases`); empty: one case per SEG.

    Returns
    -------
    cases : list[SegCase]
        One case per labelled volume, sorted by `case_id`.
    report : DataReport
        ``series`` is the number of cases; SEG files count as usable modality ``SEG``.
    """
    root = Path(root)
    if (root / "imagesTr").is_dir() and (root / "labelsTr").is_dir():
        if inputs:
            raise ConfigError(
                "config key 'seg-inputs' combines the DICOM series of a study; NIfTI pairs "
                "have no studies: convert them with `medfleet convert nifti`, or unset it"
            )
        return _index_nifti(root / "imagesTr", root / "labelsTr")
    if inputs:
        from shared.volumes.study import index_study_cases

        return index_study_cases(root, inputs)
    return _index_dicom(root)


def _index_nifti(images_dir: Path, labels_dir: Path) -> tuple[list[SegCase], DataReport]:
    """Pair ``imagesTr/<name>.nii.gz`` with ``labelsTr/<name>.nii.gz``."""
    images, labels = list_nifti(images_dir), list_nifti(labels_dir)
    report = DataReport(files=len(images) + len(labels))
    cases = []
    for name, path in images.items():
        if name not in labels:
            report.add_skip(path, SegSkipReason.NIFTI_IMAGE_WITHOUT_LABEL.value)
            continue
        cases.append(
            SegCase(case_key(f"nifti:{name}"), patient_key(name), NIFTI, (path,), labels[name])
        )
    for name, path in labels.items():
        if name not in images:
            report.add_skip(path, SegSkipReason.NIFTI_LABEL_WITHOUT_IMAGE.value)
    report.series = len(cases)
    report.usable_by_modality = {"NIFTI": len(cases)} if cases else {}
    return sorted(cases, key=lambda case: case.case_id), report


def labelled_series(
    root: Path,
) -> tuple[dict[str, list[ImageRecord]], dict[str, Path], DataReport]:
    """Index `root` and match its SEG files to image series.

    Returns
    -------
    series : dict[str, list[ImageRecord]]
        Image records by Series Instance UID (every series, labelled or not).
    matched : dict[str, Path]
        The SEG file of each labelled series.
    report : DataReport
        Usable SEGs counted under modality ``SEG``, the others under their reason.
    """
    records, report = index_folder(root)
    series: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        series[record.series_instance_uid].append(record)
    series_of = {r.sop_instance_uid: r.series_instance_uid for r in records}
    segs = _seg_headers(report)
    matched: dict[str, Path] = {}
    for seg in segs:
        outcome = _match(seg, series, series_of, matched)
        _count_seg(report, seg.path, outcome)
        if not isinstance(outcome, SegSkipReason):
            matched[outcome] = seg.path
    return series, matched, report


def _index_dicom(root: Path) -> tuple[list[SegCase], DataReport]:
    """Match SEG objects to image series found by `index_folder`."""
    series, matched, report = labelled_series(root)
    cases = []
    for uid, members in series.items():
        if uid not in matched:
            skip_series(report, members)
            continue
        paths = tuple(sorted(r.path for r in members))
        cases.append(
            SegCase(case_key(f"series:{uid}"), members[0].patient_key, DICOM, paths, matched[uid])
        )
    report.series = len(cases)
    return sorted(cases, key=lambda case: case.case_id), report


def _seg_headers(report: DataReport) -> list[_SegHeader]:
    """Read the headers of non-image files and keep the SEG objects, sorted by path."""
    found = []
    for path, reason in sorted(report.skipped_files):
        if reason != SkipReason.NON_IMAGE.value:
            continue
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (OSError, InvalidDicomError, ValueError, EOFError):
            continue
        if (
            str(ds.get("SOPClassUID", "")) == SEGMENTATION_STORAGE
            or ds.get("Modality") == SEG_MODALITY
        ):
            found.append(_seg_header(path, ds))
    return found


def _seg_header(path: Path, ds: Dataset) -> _SegHeader:
    """Collect the series and instances a SEG says it was derived from."""
    series_uids, instance_uids = set(), set()
    for item in ds.get("ReferencedSeriesSequence", []):
        series_uids.add(str(item.get("SeriesInstanceUID", "")))
        instance_uids |= {
            str(ref.get("ReferencedSOPInstanceUID", ""))
            for ref in item.get("ReferencedInstanceSequence", [])
        }
    groups = [
        *ds.get("SharedFunctionalGroupsSequence", []),
        *ds.get("PerFrameFunctionalGroupsSequence", []),
    ]
    for group in groups:
        for derivation in group.get("DerivationImageSequence", []):
            instance_uids |= {
                str(ref.get("ReferencedSOPInstanceUID", ""))
                for ref in derivation.get("SourceImageSequence", [])
            }
    return _SegHeader(
        path,
        frozenset(series_uids - {""}),
        frozenset(instance_uids - {""}),
        str(ds.get("FrameOfReferenceUID", "")),
    )


def _match(
    seg: _SegHeader,
    series: dict[str, list[ImageRecord]],
    series_of: dict[str, str],
    matched: dict[str, Path],
) -> str | SegSkipReason:
    """Return the UID of the series `seg` labels, or why it labels none."""
    candidates = [uid for uid in sorted(seg.series_uids) if uid in series]
    if not candidates:
        candidates = sorted({series_of[uid] for uid in seg.instance_uids if uid in series_of})
    if len(candidates) != 1:
        return SegSkipReason.SEG_WITHOUT_SERIES
    uid = candidates[0]
    if uid in matched:
        return SegSkipReason.SEG_DUPLICATE
    if seg.frame_of_reference and seg.frame_of_reference != _frame_of_reference(
        series[uid][0].path
    ):
        return SegSkipReason.SEG_FRAME_OF_REFERENCE
    return uid


def _frame_of_reference(path: Path) -> str:
    """FrameOfReferenceUID of one image file ('' when absent or unreadable)."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["FrameOfReferenceUID"])
    except (OSError, InvalidDicomError, ValueError, EOFError):
        return ""
    return str(ds.get("FrameOfReferenceUID", ""))


def _count_seg(report: DataReport, path: Path, outcome: str | SegSkipReason) -> None:
    """Move a SEG file from the non-image skips to usable, or to its own skip reason."""
    old = SkipReason.NON_IMAGE.value
    report.skipped_files.remove((path, old))
    report.skipped_by_reason[old] -= 1
    if not report.skipped_by_reason[old]:
        del report.skipped_by_reason[old]
    if isinstance(outcome, SegSkipReason):
        report.add_skip(path, outcome.value)
    else:
        report.usable_by_modality[SEG_MODALITY] = report.usable_by_modality.get(SEG_MODALITY, 0) + 1


def skip_series(
    report: DataReport,
    members: list[ImageRecord],
    reason: StrEnum = SegSkipReason.SERIES_WITHOUT_SEG,
) -> None:
    """Count every file of a series left out (unlabelled by default) as skipped, not usable.

    Any task's reason enum fits (the series task counts series that are not one volume).
    """
    for record in members:
        report.usable_by_modality[record.modality] -= 1
        if not report.usable_by_modality[record.modality]:
            del report.usable_by_modality[record.modality]
        report.add_skip(record.path, reason.value)
