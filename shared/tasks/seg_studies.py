"""Predict input of a multi-series model: the `seg-inputs` series of each study, stacked."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

from shared.dicom import ImageRecord, index_folder
from shared.dicom.reasons import reason_slug
from shared.errors import DataError
from shared.series_inputs import SeriesPattern
from shared.tasks.seg_predict import UnlabelledVolume, VolumeCounts
from shared.volumes.reasons import SegSkipReason
from shared.volumes.resample import stack_channels
from shared.volumes.series import load_series
from shared.volumes.study import select_inputs, series_by_study

__all__ = ["read_study_volumes"]

logger = logging.getLogger("medfleet.predict")


def read_study_volumes(
    source: Path, inputs: Sequence[SeriesPattern], counts: VolumeCounts | None = None
) -> Iterator[UnlabelledVolume]:
    """Yield one (C, H, W, D) volume per study under `source` that holds every input.

    The study's series are picked as in training (`select_inputs`), then resampled onto
    the first one's grid and stacked (`stack_channels`). Each volume is keyed by the
    reference series' UID and carries its slice headers, so its DICOM SEG references the
    reference series. Studies left out are counted in `counts` by reason
    (``studies_skipped_<reason>``; ``series_skipped`` when a series is not one volume).
    """
    counts = counts if counts is not None else VolumeCounts()
    records, report = index_folder(Path(source))
    counts.inputs.update(report.summary())
    series: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        series[record.series_instance_uid].append(record)
    studies = series_by_study(series)
    counts.add("studies", len(studies))
    for study in sorted(studies):
        chosen = select_inputs(studies[study], inputs)
        if isinstance(chosen, SegSkipReason):
            counts.add(f"studies_skipped_{reason_slug(chosen.value)}")
            logger.warning("a study is skipped: %s", chosen.value)
            continue
        try:
            volumes = [load_series([r.path for r in series[uid]]) for uid in chosen]
        except DataError:
            counts.add("series_skipped")
            logger.warning("a study is skipped: one of its series is not one regular volume")
            continue
        counts.add("volumes")
        reference = volumes[0]
        yield UnlabelledVolume(
            chosen[0],
            stack_channels(reference, volumes[1:]),
            reference.stack.spacing,
            reference.headers,
        )
