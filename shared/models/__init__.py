"""Networks used by the tasks (MONAI networks are used directly where one fits)."""

from shared.models.cnn import LesionCNN

__all__ = ["LesionCNN"]
