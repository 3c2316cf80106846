"""Segmentation run-config keys: their declarations, and the typed settings built from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import ConfigError
from shared.schema import Option
from shared.series_inputs import SeriesPattern, parse_series_inputs

__all__ = ["OPTIONS", "SegOptions"]

DEFAULT_CHANNELS = (16, 32, 64, 128)
#: Patch side used when `seg-patch-size` is not set, by spatial dims.
DEFAULT_PATCH = {3: 32, 2: 64}


OPTIONS = (
    Option("seg-spatial-dims", int, 3, "3: 3D patches; 2: axial slices", low=2, high=3),
    Option(
        "seg-patch-size", int, 0, "training patch side (0: 32 in 3D, 64 in 2D)", low=0, high=256
    ),
    Option("seg-num-classes", int, 3, "output classes including background", low=2, high=16),
    Option("seg-channels", str, "16,32,64,128", "U-Net feature maps per level, comma-separated"),
    Option("seg-res-units", int, 2, "residual units per U-Net block", low=0, high=4),
    Option(
        "seg-norm",
        str,
        "instance",
        "U-Net normalisation: instance (affine-free) or batch (what FedBN keeps at each site)",
        choices=("instance", "batch"),
    ),
    Option("seg-samples-per-case", int, 4, "patches per case per epoch", low=1, high=32),
    Option("seg-val-fraction", float, 0.2, "fraction of patients held out", low=0.01, high=0.99),
    Option(
        "seg-class-names",
        str,
        "",
        "names of classes 1..K-1 in the DICOM SEGs predict writes, comma-separated "
        "(empty: class-1, class-2, ...)",
    ),
    Option(
        "seg-inputs",
        str,
        "",
        "series of one study stacked as channels, comma-separated MODALITY:DESCRIPTION_GLOB "
        "entries, the first the labelled one, e.g. 'MR:T1*,MR:T2*' (empty: each series alone)",
    ),
)
_BY_KEY = {option.key: option for option in OPTIONS}


def _value(options: Mapping[str, Any], key: str) -> Any:
    option = _BY_KEY[key]
    return option.parse(options.get(key, option.default))


def _channels(options: Mapping[str, Any]) -> tuple[int, ...]:
    raw = _value(options, "seg-channels")
    try:
        widths = tuple(int(part) for part in str(raw).replace(" ", "").split(","))
    except ValueError:
        widths = ()
    if not 2 <= len(widths) <= 6 or not all(4 <= w <= 512 for w in widths):
        raise ConfigError(
            "config key 'seg-channels' must be 2 to 6 comma-separated widths in [4, 512] "
            f"(e.g. '16,32,64,128'), got {raw!r}"
        )
    return widths


def _class_names(options: Mapping[str, Any], num_classes: int) -> tuple[str, ...]:
    raw = str(_value(options, "seg-class-names"))
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        return tuple(f"class-{k}" for k in range(1, num_classes))
    if len(names) != num_classes - 1 or len(set(names)) != len(names):
        raise ConfigError(
            f"config key 'seg-class-names' must name the {num_classes - 1} foreground classes "
            f"once each (seg-num-classes = {num_classes} with background), got {raw!r}"
        )
    return names


@dataclass(frozen=True)
class SegOptions:
    """Typed segmentation settings.

    Attributes
    ----------
    spatial_dims : int
        3 trains on 3D patches; 2 trains on axial slices and evaluates slice by slice.
    patch_size : int
        Side of the training patch and the sliding-window ROI, divisible by
        ``2 ** (len(channels) - 1)``.
    num_classes : int
        Output classes including background.
    channels : tuple of int
        Feature maps per U-Net level; each level after the first halves the resolution.
    res_units : int
        Residual units per U-Net block (0 gives plain convolutions).
    norm : str
        ``instance`` (affine-free, no statistics: every state entry is a weight) or
        ``batch`` (learned scale and running statistics, which FedBN keeps at each site).
    samples_per_case : int
        Random patches drawn from each training case per epoch.
    val_fraction : float
        Fraction of patients held out for validation at each site.
    class_names : tuple of str
        Segment labels of classes 1..K-1 (background has none), for the DICOM SEG.
    inputs : tuple of SeriesPattern
        The series of one study stacked as image channels, in order; the first is the
        reference (labelled, its grid kept). Empty: every labelled series alone.
    """

    spatial_dims: int = 3
    patch_size: int = DEFAULT_PATCH[3]
    num_classes: int = 3
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    res_units: int = 2
    norm: str = "instance"
    samples_per_case: int = 4
    val_fraction: float = 0.2
    class_names: tuple[str, ...] = ()
    inputs: tuple[SeriesPattern, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SegOptions:
        """Parse the flat run-config mapping; raise ConfigError naming a bad key."""
        dims = int(_value(options, "seg-spatial-dims"))
        channels = _channels(options)
        # 0 (the pyproject default) means: the default for the spatial dims.
        patch = int(_value(options, "seg-patch-size")) or DEFAULT_PATCH[dims]
        if patch < 16:
            raise ConfigError(f"config key 'seg-patch-size' must be 0 (auto) or >= 16, got {patch}")
        factor = 2 ** (len(channels) - 1)
        if patch % factor:
            raise ConfigError(
                f"config key 'seg-patch-size' must be divisible by {factor} (the U-Net "
                f"downsamples {len(channels) - 1} times with 'seg-channels'), got {patch}"
            )
        return cls(
            spatial_dims=dims,
            patch_size=patch,
            num_classes=int(_value(options, "seg-num-classes")),
            channels=channels,
            res_units=int(_value(options, "seg-res-units")),
            norm=str(_value(options, "seg-norm")),
            samples_per_case=int(_value(options, "seg-samples-per-case")),
            val_fraction=float(_value(options, "seg-val-fraction")),
            class_names=_class_names(options, int(_value(options, "seg-num-classes"))),
            inputs=parse_series_inputs(str(_value(options, "seg-inputs"))),
        )

    @property
    def roi_size(self) -> tuple[int, ...]:
        """Network input size: (P, P, P) in 3D, (P, P) in 2D."""
        return (self.patch_size,) * self.spatial_dims

    @property
    def strides(self) -> tuple[int, ...]:
        """U-Net downsampling strides, one per level after the first."""
        return (2,) * (len(self.channels) - 1)

    @property
    def in_channels(self) -> int:
        """Image channels: one per `inputs` entry, one for a single series."""
        return max(1, len(self.inputs))
