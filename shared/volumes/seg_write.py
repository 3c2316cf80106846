"""Write a label map as a BINARY DICOM SEG that references its source series."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from shared.dicom.writer import make_uid
from shared.errors import DataError
from shared.volumes.geometry import stack_slices

__all__ = ["write_seg"]


def write_seg(
    mask: np.ndarray,
    source_datasets: list[Dataset],
    segment_labels: list[str],
    path: Path,
    *,
    algorithm_name: str | None = None,
    series_number: int = 100,
) -> None:
    """Write `mask` as a DICOM Segmentation (BINARY, one segment per class 1..K).

    Parameters
    ----------
    mask : numpy.ndarray
        Integer label map (x, y, z) on the grid of the source series, in the layout of
        `load_volume_case` (z by ascending position along the slice normal); values
        0 (background) to K = ``len(segment_labels)``.
    source_datasets : list[pydicom.dataset.Dataset]
        The source series' slices in any order (headers suffice; they are sorted by
        position, as the loader sorts them).
    segment_labels : list[str]
        Segment Label of classes 1..K (also used as the Segment Description).
    path : Path
        Output file.
    algorithm_name : str, optional
        Name of the model that produced `mask` (algorithm type AUTOMATIC); None means
        the mask was drawn by hand (MANUAL).
    series_number : int
        Series Number of the SEG series.

    Raises
    ------
    DataError
        When the mask does not fit the series grid or holds values above K.
    """
    stack = stack_slices(source_datasets)
    ordered = [source_datasets[i] for i in stack.order]
    first = ordered[0]
    expected = (int(first.Columns), int(first.Rows), len(ordered))
    if mask.shape != expected:
        raise DataError(f"SEG mask shape must be {expected} (x, y, z) to fit its series")
    if not segment_labels or int(mask.max(initial=0)) > len(segment_labels) or mask.min() < 0:
        raise DataError("SEG mask values must lie in 0..len(segment_labels)")
    # Dates from the study keep the file a pure function of its inputs.
    date = str(first.get("StudyDate") or "20000101")
    time = str(first.get("StudyTime") or "000000")
    uid_source = (str(first.SeriesInstanceUID), algorithm_name or "manual", series_number)
    seg = hd.seg.Segmentation(
        source_images=ordered,
        pixel_array=np.transpose(mask, (2, 1, 0)).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_descriptions(segment_labels, algorithm_name),
        series_instance_uid=make_uid("medfleet-seg", *uid_source, "series"),
        series_number=series_number,
        sop_instance_uid=make_uid("medfleet-seg", *uid_source, "instance"),
        instance_number=1,
        manufacturer="MedFleet",
        manufacturer_model_name="MedFleet volumes",
        software_versions="0.1",
        device_serial_number="0",
        content_label="SEGMENTATION",
        content_description="Segmentation",
        content_creator_name=None if algorithm_name else "MedFleet^Converter",
        content_date=date,
        content_time=time,
    )
    _make_deterministic(seg, make_uid("medfleet-seg", *uid_source, "dimensions"), date, time)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path, enforce_file_format=True)


def _descriptions(labels: Sequence[str], algorithm: str | None) -> list[hd.seg.SegmentDescription]:
    """One anatomical-structure segment per label, MANUAL or AUTOMATIC."""
    identification = None
    if algorithm:
        identification = hd.AlgorithmIdentificationSequence(
            name=algorithm, version="1", family=codes.DCM.ArtificialIntelligence
        )
    descriptions = []
    for number, label in enumerate(labels, start=1):
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type="AUTOMATIC" if algorithm else "MANUAL",
            algorithm_identification=identification,
        )
        description.SegmentDescription = label
        descriptions.append(description)
    return descriptions


def _make_deterministic(seg: Dataset, uid: str, date: str, time: str) -> None:
    """Replace highdicom's random UID and clock readings by values derived from the inputs."""
    for item in seg.get("DimensionOrganizationSequence", []):
        item.DimensionOrganizationUID = uid
    for item in seg.get("DimensionIndexSequence", []):
        item.DimensionOrganizationUID = uid
    seg.InstanceCreationDate, seg.InstanceCreationTime = date, time
    for item in seg.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = f"{date}{time}"
