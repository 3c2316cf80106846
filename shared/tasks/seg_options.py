"""Segmentation run-config keys, parsed and range-checked once into a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import ConfigError

__all__ = ["SegOptions"]

DEFAULT_CHANNELS = (16, 32, 64, 128)
#: Patch side used when `seg-patch-size` is not set, by spatial dims.
DEFAULT_PATCH = {3: 32, 2: 64}


def _int(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    raw = options.get(key, default)
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{key}' must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"config key '{key}' must be in [{low}, {high}], got {value}")
    return value


def _float(options: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    raw = options.get(key, default)
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{key}' must be a number, got {raw!r}") from None
    if not low < value < high:
        raise ConfigError(f"config key '{key}' must be in ({low}, {high}), got {value}")
    return value


def _channels(options: Mapping[str, Any]) -> tuple[int, ...]:
    raw = options.get("seg-channels", ",".join(map(str, DEFAULT_CHANNELS)))
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
    samples_per_case : int
        Random patches drawn from each training case per epoch.
    val_fraction : float
        Fraction of patients held out for validation at each site.
    """

    spatial_dims: int = 3
    patch_size: int = DEFAULT_PATCH[3]
    num_classes: int = 3
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    res_units: int = 2
    samples_per_case: int = 4
    val_fraction: float = 0.2

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SegOptions:
        """Parse the flat run-config mapping; raise ConfigError naming a bad key."""
        dims = _int(options, "seg-spatial-dims", 3, 2, 3)
        channels = _channels(options)
        # 0 (the pyproject default) means: the default for the spatial dims.
        patch = _int(options, "seg-patch-size", 0, 0, 256) or DEFAULT_PATCH[dims]
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
            num_classes=_int(options, "seg-num-classes", 3, 2, 16),
            channels=channels,
            res_units=_int(options, "seg-res-units", 2, 0, 4),
            samples_per_case=_int(options, "seg-samples-per-case", 4, 1, 32),
            val_fraction=_float(options, "seg-val-fraction", 0.2, 0.0, 1.0),
        )

    @property
    def roi_size(self) -> tuple[int, ...]:
        """Network input size: (P, P, P) in 3D, (P, P) in 2D."""
        return (self.patch_size,) * self.spatial_dims

    @property
    def strides(self) -> tuple[int, ...]:
        """U-Net downsampling strides, one per level after the first."""
        return (2,) * (len(self.channels) - 1)
