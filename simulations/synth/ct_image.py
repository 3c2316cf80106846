"""CT Image Storage instances: one axial slice per file, built on the shared DICOM modules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from shared.dicom.writer import (
    EquipmentInfo,
    PatientInfo,
    SeriesInfo,
    StudyInfo,
    add_image_pixel,
    add_image_plane,
    new_dataset,
)
from simulations.synth.identity import SiteIdentity
from simulations.synth.sites import SiteProfile

__all__ = ["CtSlice", "build_ct_slice", "equipment_of"]


@dataclass(frozen=True)
class CtSlice:
    """One slice to write: its pixels, identity and position along the patient axis."""

    pixels: np.ndarray
    sop_instance_uid: str
    instance_number: int
    z_mm: float


def equipment_of(profile: SiteProfile, site: SiteIdentity | None = None) -> EquipmentInfo:
    """Return the General Equipment facts of a site's scanner (and hospital, when given)."""
    if site is None:
        return EquipmentInfo(manufacturer=profile.manufacturer, model=profile.model)
    return EquipmentInfo(
        manufacturer=profile.manufacturer,
        model=profile.model,
        institution_name=site.institution_name,
        institution_address=site.institution_address,
        department=site.department,
        station_name=site.station_name,
    )


def _add_ct_image(ds: Dataset, profile: SiteProfile) -> None:
    """CT Image module (and the VOI LUT window) for a site's reconstruction settings."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.RescaleIntercept = f"{profile.rescale_intercept:g}"
    ds.RescaleSlope = f"{profile.rescale_slope:g}"
    ds.RescaleType = "HU"
    ds.KVP = f"{profile.kvp:g}"
    ds.AcquisitionNumber = 1
    ds.ConvolutionKernel = "STANDARD"
    ds.WindowCenter = f"{profile.window_center:g}"
    ds.WindowWidth = f"{profile.window_width:g}"
    ds.WindowCenterWidthExplanation = "LUNG"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"


def build_ct_slice(
    ct_slice: CtSlice,
    profile: SiteProfile,
    patient: PatientInfo,
    study: StudyInfo,
    series: SeriesInfo,
    equipment: EquipmentInfo | None = None,
) -> Dataset:
    """Build a complete CT Image Storage dataset for one slice.

    Parameters
    ----------
    ct_slice : CtSlice
        Stored pixels (already rescale-encoded for ``profile``), UID, number and position.
    profile : SiteProfile
        The site whose scanner settings apply.
    patient, study, series : PatientInfo, StudyInfo, SeriesInfo
        The slice's context.
    equipment : EquipmentInfo, optional
        The scanner and hospital; the site's scanner alone when not given.

    Returns
    -------
    pydicom.dataset.Dataset
        Ready for `shared.dicom.writer.write_dataset`.
    """
    ds = new_dataset(
        CTImageStorage,
        ct_slice.sop_instance_uid,
        patient,
        study,
        series,
        equipment or equipment_of(profile),
    )
    ds.InstanceNumber = ct_slice.instance_number
    ds.ContentDate = study.date
    ds.ContentTime = study.time
    ds.AcquisitionDate = study.date
    ds.AcquisitionTime = study.time
    half = (profile.matrix - 1) / 2.0 * profile.pixel_spacing_mm
    add_image_plane(
        ds,
        position_mm=(-half, -half, ct_slice.z_mm),
        spacing_mm=profile.pixel_spacing_mm,
        thickness_mm=profile.slice_thickness_mm,
    )
    add_image_pixel(ds, ct_slice.pixels)
    _add_ct_image(ds, profile)
    return ds
