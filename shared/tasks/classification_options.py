"""Run-config keys of the classification task."""

from __future__ import annotations

from shared.schema import Option

__all__ = ["CLASSIFIERS", "IMAGE_SIZE", "MODEL", "OPTIONS", "SERIES_NETWORKS", "VAL_FRACTION"]

#: Networks of the `model` key: MedFleet's small LesionCNN (group norm) or MONAI's
#: ResNet-18 (batch norm, 11 M parameters; the MedMNIST v2 reference model). The series
#: task (`shared.tasks.series_classification`) scores each slice with either and takes
#: the maximum, or reads the whole series with `cnn-gru` (LesionCNN encoder + bi-GRU).
CLASSIFIERS = ("lesion-cnn", "resnet18", "cnn-gru")
#: Networks that read a whole series: only the series task builds them.
SERIES_NETWORKS = ("cnn-gru",)

#: Patients held out for validation at each site (shared with the GAN task).
VAL_FRACTION = Option(
    "val-fraction", float, 0.2, "fraction of patients held out at each site", low=0.01, high=0.99
)

IMAGE_SIZE = Option("image-size", int, 64, "side of the square network input", low=16, high=512)
MODEL = Option("model", str, "lesion-cnn", "classifier network", choices=CLASSIFIERS)

OPTIONS = (IMAGE_SIZE, MODEL, VAL_FRACTION)
