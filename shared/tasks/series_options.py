"""Run-config keys of the series task (it also reads `model`, `image-size`, `val-fraction`)."""

from __future__ import annotations

from shared.schema import Option
from shared.tasks.classification_options import IMAGE_SIZE, MODEL, VAL_FRACTION

__all__ = ["GRU_HIDDEN", "OPTIONS", "SERIES_LABELS_FILE"]

#: The labels of a series site: ``series_instance_uid,label`` (0 or 1) per series.
SERIES_LABELS_FILE = "series_labels.csv"

GRU_HIDDEN = Option(
    "series-gru-hidden",
    int,
    64,
    "model cnn-gru: width of the slice features and of each GRU direction",
    low=4,
    high=1024,
)

# The classification keys are declared identically here: one meaning in every task.
OPTIONS = (IMAGE_SIZE, MODEL, VAL_FRACTION, GRU_HIDDEN)
