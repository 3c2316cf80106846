"""Series-level data: index a folder into geometry-ordered slice series, load and batch them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform
from torch.nn.utils.rnn import pad_sequence

from shared.data.listing import file_signature
from shared.dicom import DataReport, ImageRecord, index_folder
from shared.errors import DataError
from shared.volumes.geometry import stack_slices
from shared.volumes.index import skip_series
from shared.volumes.series import load_series, read_slice_headers

__all__ = [
    "SeriesRecord",
    "SeriesSkipReason",
    "LoadSeriesd",
    "collate_series",
    "index_series",
    "series_items",
]


class SeriesSkipReason(StrEnum):
    """Why the files of a series are left out (counted per file; never a header value)."""

    #: Mixed orientation or size, duplicate positions, uneven gaps, multi-frame files.
    NOT_A_VOLUME = "series not one volume"


@dataclass(frozen=True)
class SeriesRecord:
    """One usable series: its slices in order along the slice normal. Site-local.

    Attributes
    ----------
    uid : str
        SeriesInstanceUID (the key of labels and predictions).
    patient_key : str
        Pseudonymous patient key, for patient-level splits.
    modality : str
        DICOM modality code of the slices.
    paths : tuple[Path, ...]
        Slice files by ascending position along the normal (ImagePositionPatient).
    """

    uid: str
    patient_key: str
    modality: str
    paths: tuple[Path, ...]


def index_series(root: Path) -> tuple[list[SeriesRecord], DataReport]:
    """Group a folder's usable images into series and order each along its normal.

    Headers only: a series whose slices do not stack into one regular volume (mixed
    orientation or size, duplicate positions, uneven gaps, multi-frame files) is left
    out, all of its files counted under `SeriesSkipReason.NOT_A_VOLUME`.

    Returns
    -------
    series : list[SeriesRecord]
        Sorted by UID.
    report : DataReport
        The folder's counts; ``series`` counts the usable series.
    """
    records, report = index_folder(root)
    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        groups[record.series_instance_uid].append(record)
    found = []
    for uid in sorted(groups):
        members = groups[uid]
        try:
            order = stack_slices(read_slice_headers([r.path for r in members])).order
        except DataError:
            skip_series(report, members, SeriesSkipReason.NOT_A_VOLUME)
            continue
        paths = tuple(members[i].path for i in order)
        found.append(SeriesRecord(uid, members[0].patient_key, members[0].modality, paths))
    report.series = len(found)
    return found, report


def series_items(
    series: Sequence[SeriesRecord], labels: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """Dataset items of `series` (their labels when given), for `LoadSeriesd`."""
    items = []
    for record in series:
        item: dict[str, Any] = {
            "series": tuple(str(p) for p in record.paths),
            "modality": record.modality,
            # Part of a PersistentDataset's cache key: a changed slice is decoded again.
            "signature": file_signature(*record.paths),
        }
        if labels is not None:
            item["label"] = labels[record.uid]
        items.append(item)
    return items


class LoadSeriesd(MapTransform):
    """Load ``data["series"]`` (slice paths) as a channel-first volume ``(1, X, Y, Z)``.

    Float32 in modality units (rescale applied), axis 2 running along the slice normal
    in ascending position (`shared.volumes.load_series`: the slices are sorted by their
    geometry again, whatever order the paths come in). Every slice is kept.

    Parameters
    ----------
    series_key, image_key : str
        Input key of the slice paths, output key of the volume.
    """

    def __init__(self, series_key: str = "series", image_key: str = "image") -> None:
        super().__init__(series_key)
        self.series_key, self.image_key = series_key, image_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        volume = load_series([Path(p) for p in out[self.series_key]])
        out[self.image_key] = volume.array[np.newaxis]
        return out


def collate_series(items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Batch series of different lengths: pad the slices, keep every one, carry lengths.

    Parameters
    ----------
    items : sequence of dict
        Each with ``image`` of shape (C, H, W, D_i) (D_i slices along the last axis),
        and optionally ``label``.

    Returns
    -------
    dict
        ``image``: (B, max D_i, C, H, W), series order kept, zeros after each series'
        end; ``lengths``: (B,) int64 of D_i; ``label``: (B,) int64 when the items have one.
    """
    if not items:
        raise ValueError("collate_series needs at least one series")
    slices = [torch.as_tensor(item["image"]).permute(3, 0, 1, 2) for item in items]
    batch = {
        "image": pad_sequence(slices, batch_first=True),
        "lengths": torch.tensor([len(s) for s in slices], dtype=torch.int64),
    }
    if all("label" in item for item in items):
        batch["label"] = torch.tensor([int(item["label"]) for item in items], dtype=torch.int64)
    return batch
