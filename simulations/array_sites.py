"""Write labelled 2D image arrays (e.g. MedMNIST) as per-site DICOM folders with labels.csv."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.uid import SecondaryCaptureImageStorage

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

__all__ = ["split_non_iid", "write_array_site"]


def split_non_iid(
    labels: np.ndarray, shares_per_class: Sequence[Sequence[float]], seed: int = 0
) -> list[np.ndarray]:
    """Deal indices to sites with a different share of each class per site (label skew).

    Parameters
    ----------
    labels : np.ndarray
        Class of every item, shape (N,).
    shares_per_class : sequence of sequence of float
        `shares_per_class[c][s]`: fraction of class `c` that goes to site `s` (rows sum to 1).
    seed : int
        Shuffle seed; the same inputs give the same split.
    """
    rng = np.random.default_rng(seed)
    n_sites = len(shares_per_class[0])
    sites: list[list[int]] = [[] for _ in range(n_sites)]
    for cls, shares in enumerate(shares_per_class):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        bounds = np.round(np.cumsum(shares) * len(idx)).astype(int)
        for site, part in enumerate(np.split(idx, bounds[:-1])):
            sites[site].extend(part.tolist())
    return [np.sort(np.asarray(s, dtype=int)) for s in sites]


def write_array_site(
    images: np.ndarray,
    labels: np.ndarray,
    site_dir: Path,
    code: str,
    modality: str = "OT",
    pixel_spacing_mm: float = 1.0,
) -> Path:
    """Write each (H, W) array as a Secondary Capture DICOM image, one pseudonymous patient each.

    Parameters
    ----------
    images : np.ndarray
        Unsigned integer images, shape (N, H, W).
    labels : np.ndarray
        The label of each image (written to labels.csv), shape (N,).
    site_dir : Path
        Output folder (created).
    code : str
        Site code used in pseudonymous patient IDs and UIDs.
    modality : str
        DICOM Modality of the source images (e.g. 'US' for ultrasound).
    """
    site_dir.mkdir(parents=True, exist_ok=True)
    equipment = EquipmentInfo("MedFleet", "array-to-dicom", "medfleet 0.1")
    rows = []
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        pid = f"{code}-P{index:05d}"
        study = StudyInfo(
            make_uid(code, pid, "study"), "20260101", "120000", f"{index}", f"A{index}"
        )
        series = SeriesInfo(
            make_uid(code, pid, "series"), 1, modality, "converted", make_uid(code, pid, "for")
        )
        ds = new_dataset(
            SecondaryCaptureImageStorage,
            make_uid(code, pid, "sop"),
            PatientInfo(pid, f"Anon^{pid}"),
            study,
            series,
            equipment,
        )
        ds.ConversionType = "WSD"
        ds.InstanceNumber = 1
        ds.PixelSpacing = [str(pixel_spacing_mm)] * 2
        add_image_pixel(ds, np.asarray(image).astype(np.uint16))
        write_dataset(ds, site_dir / pid / f"IM{index:05d}.dcm")
        rows.append((ds.SOPInstanceUID, int(label)))
    with (site_dir / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sop_instance_uid", "label"])
        writer.writerows(rows)
    return site_dir
