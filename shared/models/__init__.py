"""Networks used by the tasks (MONAI networks are used directly where one fits)."""

from shared.models.cnn import LesionCNN
from shared.models.series_gru import SeriesGRU
from shared.models.slice_max import SliceMax

__all__ = ["LesionCNN", "SeriesGRU", "SliceMax"]
