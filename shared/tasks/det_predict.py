"""Detection predict: nodules per CT series as JSON, a DICOM SR (TID 1500) and PNG slices."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import torch
from monai.transforms import ScaleIntensityRange
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from torch import nn

from shared.dicom import index_folder
from shared.dicom.writer import make_uid
from shared.errors import DataError
from shared.progress import track
from shared.tasks.base import Prediction, Predictions
from shared.tasks.det_boxes import boxes_to_world
from shared.tasks.det_data import HU_WINDOW
from shared.tasks.det_infer import detect
from shared.tasks.detection_options import DetOptions
from shared.volumes.geometry import voxel_to_patient
from shared.volumes.series import load_series

__all__ = ["SeriesDetections", "predict_series", "write_detections", "write_sr"]

logger = logging.getLogger("medfleet.predict")
ALGORITHM = "MedFleet RetinaNet"


@dataclass(frozen=True)
class SeriesDetections:
    """What a series' outputs need: its headers (volume order), affine and detections.

    ``boxes`` are voxel ``xyzxyz``, ``world`` the same boxes as ``cccwhd`` in patient mm.
    """

    headers: tuple[Dataset, ...]
    affine: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    world: np.ndarray

    def diameters_mm(self) -> np.ndarray:
        """Each box's axial diameter: the mean of its two in-plane sizes (mm)."""
        return np.asarray(self.world[:, 3:5].mean(axis=1)) if len(self.world) else np.zeros(0)


def predict_series(
    detector: nn.Module, source: Path, options: DetOptions, device: torch.device
) -> Predictions:
    """Detect nodules in every series under `source` that forms one volume.

    Each `Prediction` is keyed by Series Instance UID with ``nodules`` and ``max_score``,
    the HU volume as `array` (for the PNGs) and a `SeriesDetections` reference. Series
    that are not one regular volume are skipped and counted (``series_skipped``).
    """
    records, report = index_folder(source)
    inputs = dict(report.summary())
    series: dict[str, list[Path]] = defaultdict(list)
    for record in records:
        series[record.series_instance_uid].append(record.path)
    scale = ScaleIntensityRange(HU_WINDOW[0], HU_WINDOW[1], 0.0, 1.0, clip=True)
    items, skipped = [], 0
    for uid in track(sorted(series), "detecting nodules"):
        try:
            volume = load_series(series[uid])
        except DataError:
            skipped += 1
            continue
        image = torch.as_tensor(np.asarray(scale(volume.array[np.newaxis])), dtype=torch.float32)
        affine = voxel_to_patient(
            volume.stack, [float(v) for v in volume.headers[0].ImagePositionPatient]
        )
        boxes, scores = detect(detector, image, options, device, volume.stack.spacing)
        found = SeriesDetections(volume.headers, affine, boxes, scores,
                                 boxes_to_world(boxes, affine, volume.array.shape))  # fmt: skip
        values = {"nodules": float(len(boxes)), "max_score": float(scores.max(initial=0.0))}
        items.append(Prediction(uid, values, volume.array, (found,)))
    inputs.update(volumes=len(items), series_skipped=skipped)
    if skipped:
        logger.warning("%d DICOM series skipped: they do not form one regular volume", skipped)
    if not items:
        raise DataError(
            "no CT series to read: give a folder of DICOM series (`medfleet data check`)"
        )
    return Predictions(items, inputs)


def _found(prediction: Prediction) -> SeriesDetections:
    found = prediction.references[0]
    if not isinstance(found, SeriesDetections):
        raise TypeError("a detection prediction references its SeriesDetections")
    return found


def write_detections(predictions: Predictions, out_dir: Path) -> dict[str, list[str]]:
    """``detections.json``, ``sr/<SeriesInstanceUID>.dcm`` and ``png/<uid>-<i>.png``."""
    table, srs, pngs = {}, [], []
    for prediction in predictions:
        found = _found(prediction)
        table[prediction.key] = [
            {
                "score": round(float(score), 4),
                "center_mm": [round(float(v), 2) for v in world[:3]],
                "size_mm": [round(float(v), 2) for v in world[3:]],
                "diameter_mm": round(float(diameter), 2),
                "box_voxel": [round(float(v), 2) for v in box],
            }
            for score, world, diameter, box in zip(
                found.scores, found.world, found.diameters_mm(), found.boxes, strict=True
            )
        ]
        srs.append(write_sr(found, out_dir / "sr" / f"{prediction.key}.dcm"))
        if prediction.array is not None:
            pngs += _write_pngs(prediction.array, found, out_dir / "png", prediction.key)
    path = out_dir / "detections.json"
    path.write_text(json.dumps(table, indent=2) + "\n")
    return {"detections": [str(path)], "sr": [str(p) for p in srs], "png": [str(p) for p in pngs]}


def _central_slice(found: SeriesDetections, index: int) -> int:
    center_z = (found.boxes[index, 2] + found.boxes[index, 5]) / 2.0
    return int(np.clip(np.rint(center_z), 0, len(found.headers) - 1))


def _finding(
    found: SeriesDetections, index: int
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """One nodule: a circle on its central slice (pixel coordinates) and its diameter."""
    box = found.boxes[index]
    source = found.headers[_central_slice(found, index)]
    # SCOORD pixel coordinates put the centre of pixel (column i, row j) at (i + 0.5, j + 0.5).
    column, row = (box[0] + box[3]) / 2.0 + 0.5, (box[1] + box[4]) / 2.0 + 0.5
    radius = max(float(box[3] - box[0]) / 2.0, 0.5)
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.CIRCLE,
        graphic_data=np.array([[column, row], [column + radius, row]]),
        source_image=hd.sr.SourceImageForRegion.from_source_image(source),
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=make_uid("medfleet-det-sr", str(source.SeriesInstanceUID), "nodule", index),
            identifier=f"nodule {index + 1}",
        ),
        referenced_region=region,
        finding_type=codes.SCT.Nodule,
        algorithm_id=hd.sr.AlgorithmIdentification(name=ALGORITHM, version="1"),
        measurements=[
            hd.sr.Measurement(
                name=codes.SCT.Diameter,
                value=round(float(found.diameters_mm()[index]), 2),
                unit=codes.UCUM.Millimeter,
            )
        ],
    )


def write_sr(found: SeriesDetections, path: Path) -> Path:
    """A Comprehensive 3D SR measurement report (TID 1500): one finding per nodule.

    It references the source series (its slices as evidence, each finding's circle on
    its central slice); UIDs derive from the series UID, so a rerun writes the same file.
    """
    first = found.headers[0]
    series_uid = str(first.SeriesInstanceUID)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=make_uid("medfleet-det-sr", "device"), name=ALGORITHM
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[_finding(found, i) for i in range(len(found.boxes))],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(found.headers),
        content=report,
        series_instance_uid=make_uid("medfleet-det-sr", series_uid, "series"),
        series_number=900,
        sop_instance_uid=make_uid("medfleet-det-sr", series_uid, "instance"),
        instance_number=1,
        manufacturer="MedFleet",
        is_complete=True,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(path, enforce_file_format=True)
    return path


def _write_pngs(volume: np.ndarray, found: SeriesDetections, folder: Path, key: str) -> list[Path]:
    """Each box's central axial slice (lung window, at least 256 px) with the box in red."""
    from matplotlib.image import imsave  # Agg: needs no display

    low, high = -1350.0, 150.0  # lung window: centre -600 HU, width 1500
    paths = []
    for index, box in enumerate(found.boxes):
        plane = volume[:, :, _central_slice(found, index)].T  # (rows = y, columns = x)
        grey = np.clip((plane - low) / (high - low), 0.0, 1.0)
        rgb = np.repeat(grey[..., np.newaxis], 3, axis=2)
        rows, columns = plane.shape
        x0, x1 = (int(np.clip(np.rint(v), 0, columns - 1)) for v in (box[0], box[3]))
        y0, y1 = (int(np.clip(np.rint(v), 0, rows - 1)) for v in (box[1], box[4]))
        red = np.array([1.0, 0.1, 0.1])
        rgb[y0, x0 : x1 + 1] = rgb[y1, x0 : x1 + 1] = red
        rgb[y0 : y1 + 1, x0] = rgb[y0 : y1 + 1, x1] = red
        # Small matrices are enlarged (nearest neighbour) to at least 256 pixels a side.
        factor = max(1, -(-256 // max(rows, columns)))
        rgb = np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)
        path = folder / f"{key}-{index + 1}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        imsave(path, rgb)
        paths.append(path)
    return paths
