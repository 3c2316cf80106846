"""Generated images as PNG files and as DICOM Secondary Capture objects (highdicom)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np

from shared.dicom.writer import make_uid
from shared.tasks.base import Prediction

__all__ = ["SYNTHETIC_PATIENT", "to_uint8", "write_captures"]

#: Generated images belong to no patient: viewers still need a patient to file them under.
SYNTHETIC_PATIENT = ("MEDFLEET-SYNTHETIC", "MedFleet^Synthetic")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Map a generated image with values in [-1, 1] to 8-bit grey levels (0 to 255)."""
    return np.round((np.clip(image, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def write_captures(
    predictions: Sequence[Prediction], out_dir: Path, model_id: str, date: str = "20000101"
) -> tuple[list[Path], list[Path]]:
    """Write each generated image as ``png/<key>.png`` and ``dicom/<key>.dcm``.

    The DICOM files form one study and series of Secondary Capture images (MONOCHROME2,
    8 bit) of a synthetic patient; UIDs derive from `model_id` and the key, so the same
    model and seed give the same files. The Burned In Annotation and the image type say
    the images are derived, not acquired.
    """
    from matplotlib.image import imsave  # Agg: needs no display

    out_dir = Path(out_dir)
    study = make_uid("medfleet-capture", model_id, "study")
    series = make_uid("medfleet-capture", model_id, "series")
    pngs, dicoms = [], []
    for number, prediction in enumerate(predictions, start=1):
        if prediction.array is None:
            continue
        pixels = to_uint8(prediction.array)
        png = out_dir / "png" / f"{prediction.key}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        # RGB bytes, not a colour-mapped array: the PNG holds exactly the DICOM's grey levels.
        imsave(png, np.repeat(pixels[..., np.newaxis], 3, axis=2))
        image = hd.sc.SCImage(
            pixel_array=pixels,
            photometric_interpretation=hd.PhotometricInterpretationValues.MONOCHROME2,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            study_instance_uid=study,
            series_instance_uid=series,
            series_number=900,
            sop_instance_uid=make_uid("medfleet-capture", model_id, prediction.key),
            instance_number=number,
            manufacturer="MedFleet",
            patient_id=SYNTHETIC_PATIENT[0],
            patient_name=SYNTHETIC_PATIENT[1],
            study_date=date,
            study_time="000000",
            patient_orientation=("L", "P"),
        )
        image.SeriesDescription = "MedFleet GAN samples (synthetic)"
        image.ImageType = ["DERIVED", "SECONDARY"]
        image.BurnedInAnnotation = "NO"
        path = out_dir / "dicom" / f"{prediction.key}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save_as(path, enforce_file_format=True)
        pngs.append(png)
        dicoms.append(path)
    return pngs, dicoms
