"""Small MR series with their SEG for the volume tests, written into tmp folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from shared.dicom.writer import PatientInfo, StudyInfo
from shared.volumes import write_mr_series, write_seg
from shared.volumes.mr_series import AXIAL

# Distinctive fake identifier: reports must never contain it.
PATIENT_ID = "PID-VOL-7731-QX"
SEGMENT_LABELS = ["left", "right"]


def make_volume(shape: tuple[int, int, int] = (20, 24, 9), seed: int = 0) -> np.ndarray:
    """Random non-integer image values (exercises the rescale encoding)."""
    return np.random.default_rng(seed).normal(300.0, 40.0, size=shape).astype(np.float32)


def make_mask(shape: tuple[int, int, int] = (20, 24, 9)) -> np.ndarray:
    """Two boxes (classes 1 and 2) that avoid the first and last slices."""
    mask = np.zeros(shape, dtype=np.uint8)
    mask[3:9, 4:12, 2:5] = 1
    mask[11:17, 14:21, 4:7] = 2
    return mask


def write_case(
    root: Path,
    volume: np.ndarray,
    mask: np.ndarray,
    name: str = "case",
    spacing: Sequence[float] = (0.8, 0.9, 2.5),
    orientation: Sequence[float] = AXIAL,
    patient_id: str = PATIENT_ID,
) -> tuple[Path, Path, list[Dataset]]:
    """Write an MR series and its SEG under ``root/<name>``; return both and the slices."""
    patient = PatientInfo(patient_id=patient_id, patient_name="Zyxwvut^Quentinella")
    study = StudyInfo("1.2.826.0.1.3680043.8.498.77", "20240102", "101010", "S1", "A1")
    slices = write_mr_series(
        volume,
        spacing,
        root / name / "MR",
        patient,
        study,
        seed=f"test|{name}|{patient_id}",
        orientation=orientation,
    )
    seg = root / name / "SEG" / "seg.dcm"
    write_seg(mask, slices, SEGMENT_LABELS, seg)
    return root / name / "MR", seg, slices
