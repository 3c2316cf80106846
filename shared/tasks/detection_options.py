"""Detection run-config keys: their declarations, and the typed settings built from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.schema import Option

__all__ = ["OPTIONS", "DetOptions"]

OPTIONS = (
    Option(
        "det-spatial-dims",
        int,
        3,
        "3: whole CT volumes; 2: axial slices, boxes merged into 3D (small machines)",
        low=2,
        high=3,
    ),
    Option(
        "det-width", int, 8, "ResNet width of the first stage (doubled per stage)", low=4, high=64
    ),
    Option("det-fpn-channels", int, 32, "feature-pyramid and head channels", low=8, high=256),
    Option("det-val-fraction", float, 0.2, "fraction of patients held out", low=0.01, high=0.99),
    Option(
        "det-score-threshold",
        float,
        0.05,
        "lowest score of a detection kept (before non-maximum suppression)",
        low=0.0,
        high=0.99,
    ),
    Option(
        "det-nms-iou",
        float,
        0.22,
        "IoU above which a lower-scored box is suppressed",
        low=0.01,
        high=1.0,
    ),
)
_BY_KEY = {option.key: option for option in OPTIONS}


def _value(options: Mapping[str, Any], key: str) -> Any:
    option = _BY_KEY[key]
    return option.parse(options.get(key, option.default))


@dataclass(frozen=True)
class DetOptions:
    """Typed detection settings.

    Attributes
    ----------
    spatial_dims : int
        3 trains on whole CT volumes; 2 on axial slices (per-slice boxes merged in 3D).
    width : int
        Channels of the ResNet's first stage; the second has twice as many.
    fpn_channels : int
        Channels of the feature pyramid and of RetinaNet's heads.
    val_fraction : float
        Fraction of patients held out for validation at each site.
    score_threshold : float
        Detections scored below it are dropped.
    nms_iou : float
        Non-maximum suppression IoU threshold.
    """

    spatial_dims: int = 3
    width: int = 8
    fpn_channels: int = 32
    val_fraction: float = 0.2
    score_threshold: float = 0.05
    nms_iou: float = 0.22

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DetOptions:
        """Parse the flat run-config mapping; raise ConfigError naming a bad key."""
        return cls(
            spatial_dims=int(_value(options, "det-spatial-dims")),
            width=int(_value(options, "det-width")),
            fpn_channels=int(_value(options, "det-fpn-channels")),
            val_fraction=float(_value(options, "det-val-fraction")),
            score_threshold=float(_value(options, "det-score-threshold")),
            nms_iou=float(_value(options, "det-nms-iou")),
        )
