"""Write a volume as an MR Image Storage series (one single-frame slice per file)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage

from shared.dicom.writer import (
    EquipmentInfo,
    PatientInfo,
    SeriesInfo,
    StudyInfo,
    add_image_pixel,
    make_uid,
    new_dataset,
    write_dataset,
)
from shared.errors import DataError

__all__ = ["AXIAL", "MrAcquisition", "write_mr_series"]

#: Row direction then column direction (LPS) of axial slices.
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_UINT16_MAX = 65535


@dataclass(frozen=True)
class MrAcquisition:
    """MR acquisition facts written into the MR Image module (a plain spin echo by default)."""

    repetition_time_ms: float = 2000.0
    echo_time_ms: float = 20.0
    field_strength_t: float = 1.5
    scanning_sequence: str = "SE"
    acquisition_type: str = "3D"
    equipment: EquipmentInfo = EquipmentInfo("MedFleet", "Volume Writer", "medfleet 0.1")


def write_mr_series(
    volume: np.ndarray,
    spacing: Sequence[float],
    out_dir: Path,
    patient: PatientInfo,
    study: StudyInfo,
    *,
    seed: str,
    orientation: Sequence[float] = AXIAL,
    origin: Sequence[float] | None = None,
    series_number: int = 1,
    description: str = "MR volume",
    acquisition: MrAcquisition | None = None,
    frame_of_reference_uid: str | None = None,
) -> list[Dataset]:
    """Write `volume` as MR slices ``IM00001.dcm``... under `out_dir`.

    Parameters
    ----------
    volume : numpy.ndarray
        (x, y, z) values in modality units, laid out as `load_volume_case` returns them:
        slice k is ``volume[:, :, k].T`` (rows, columns).
    spacing : Sequence[float]
        Voxel size in mm along x (column spacing), y (row spacing) and z (slice gap).
    out_dir : Path
        Folder of the series' files.
    patient, study : PatientInfo, StudyInfo
        Pseudonymous patient and study of the series.
    seed : str
        Source of every UID (series, frame of reference, instances): same seed, same UIDs.
    orientation : Sequence[float]
        ImageOrientationPatient: row then column direction cosines (LPS).
    origin : Sequence[float], optional
        Position (mm, LPS) of voxel (0, 0, 0); the volume is centred on 0 when None.
    series_number, description : int, str
        Series Number and Series Description.
    acquisition : MrAcquisition, optional
        Sequence timing, field strength and equipment.
    frame_of_reference_uid : str, optional
        Frame of Reference UID, to share one with other series of the study (the same
        patient position); derived from `seed` when None.

    Returns
    -------
    list[pydicom.dataset.Dataset]
        The written slices in z order (pixel data included).
    """
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise DataError("an MR volume must be a non-empty 3D array")
    acq = acquisition or MrAcquisition()
    rows_dir = np.asarray(orientation[:3], dtype=np.float64)
    cols_dir = np.asarray(orientation[3:], dtype=np.float64)
    normal = np.cross(rows_dir, cols_dir)
    steps = np.asarray(spacing, dtype=np.float64)
    if origin is None:
        half = (np.asarray(volume.shape) - 1) * steps / 2.0
        origin = -(half[0] * rows_dir + half[1] * cols_dir + half[2] * normal)
    stored, slope, intercept = encode_mr(volume)
    series = SeriesInfo(
        uid=make_uid("medfleet-mr", seed, "series"),
        number=series_number,
        modality="MR",
        description=description,
        frame_of_reference_uid=frame_of_reference_uid
        or make_uid("medfleet-mr", seed, "frame-of-reference"),
        body_part="HEAD",
    )
    datasets = []
    for k in range(volume.shape[2]):
        ds = new_dataset(
            MRImageStorage,
            make_uid("medfleet-mr", seed, "image", k),
            patient,
            study,
            series,
            acq.equipment,
        )
        position = np.asarray(origin, dtype=np.float64) + k * steps[2] * normal
        _add_plane(ds, position, orientation, steps, float(position @ normal))
        add_image_pixel(ds, np.ascontiguousarray(stored[:, :, k].T))
        _add_mr_image(ds, acq, k + 1, study, (slope, intercept))
        write_dataset(ds, Path(out_dir) / f"IM{k + 1:05d}.dcm")
        datasets.append(ds)
    return datasets


def encode_mr(volume: np.ndarray) -> tuple[np.ndarray, str, str]:
    """Return stored 16-bit values and the Rescale Slope/Intercept strings that decode them.

    Whole numbers that fit 16 bits are stored as they are (slope 1: lossless); other
    values are spread over 0..65535, so decoding is exact within half a slope.
    """
    values = np.asarray(volume, dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError("an MR volume must hold finite values")
    low, high = float(values.min()), float(values.max())
    if np.array_equal(values, np.rint(values)):
        for dtype in (np.uint16, np.int16):
            info = np.iinfo(dtype)
            if info.min <= low and high <= info.max:
                return values.astype(dtype), "1", "0"
    # Decimal String allows 16 characters: 10 significant digits always fit.
    intercept = f"{low:.10g}"
    slope = f"{(high - low) / _UINT16_MAX if high > low else 1.0:.10g}"
    stored = np.rint((values - float(intercept)) / float(slope))
    return np.clip(stored, 0, _UINT16_MAX).astype(np.uint16), slope, intercept


def _add_plane(
    ds: Dataset,
    position: np.ndarray,
    orientation: Sequence[float],
    steps: np.ndarray,
    location: float,
) -> None:
    """Image Plane module with anisotropic pixels (rows apart by y, columns apart by x)."""
    ds.PixelSpacing = [_ds(steps[1]), _ds(steps[0])]
    ds.ImageOrientationPatient = [_ds(v) for v in orientation]
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.SliceThickness = _ds(steps[2])
    ds.SpacingBetweenSlices = _ds(steps[2])
    ds.SliceLocation = _ds(location)


def _add_mr_image(
    ds: Dataset, acq: MrAcquisition, number: int, study: StudyInfo, rescale: tuple[str, str]
) -> None:
    """General Image, MR Image and modality rescale attributes of one slice."""
    ds.InstanceNumber = number
    ds.ContentDate, ds.ContentTime = study.date, study.time
    ds.AcquisitionDate, ds.AcquisitionTime = study.date, study.time
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.ScanningSequence = acq.scanning_sequence
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = acq.acquisition_type
    ds.RepetitionTime = _ds(acq.repetition_time_ms)
    ds.EchoTime = _ds(acq.echo_time_ms)
    ds.EchoTrainLength = 1
    ds.MagneticFieldStrength = _ds(acq.field_strength_t)
    ds.ImagedNucleus = "1H"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    if rescale != ("1", "0"):
        # Not part of the MR IOD, but read by viewers and pydicom's modality LUT.
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "US"


def _ds(value: float) -> str:
    """Format a number for a Decimal String (at most 16 characters)."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
