"""SecAgg+ settings checked before a run starts, and each site's update checked before masking.

Flower's SecAgg+ only warns when an update does not fit the quantisation (a weight above
`max_weight`, a value outside `clipping_range`) and then silently corrupts the aggregate.
MedFleet refuses instead, at the door, with the setting to raise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from shared.config import SecAggConfig
from shared.errors import ConfigError, UpdateError

__all__ = [
    "MODULUS_RANGE",
    "QUANTIZATION_RANGE",
    "check_update_fits",
    "validate_secagg",
]

# Flower's SecAggPlusWorkflow defaults; `server.secagg_workflow` passes these explicitly.
QUANTIZATION_RANGE = 2**22
MODULUS_RANGE = 2**32


def _check_shares(num_shares: int, threshold: int, num_sites: int) -> None:
    if num_shares < 3:
        raise ConfigError(
            f"config key 'secagg-num-shares' must be >= 3 (Flower's SecAgg+ needs more than "
            f"2 shares), got {num_shares}"
        )
    if num_shares > num_sites:
        raise ConfigError(
            f"config key 'secagg-num-shares' ({num_shares}) must not exceed the number of "
            f"sites ({num_sites}): a key is split among the site and its neighbours"
        )
    if num_shares < num_sites and num_shares % 2 == 0:
        raise ConfigError(
            f"config key 'secagg-num-shares' must be odd when smaller than the number of "
            f"sites ({num_sites}); got {num_shares}, use {num_shares + 1}"
        )
    if not num_shares / 2 < threshold < num_shares:
        raise ConfigError(
            f"config key 'secagg-threshold' must be more than half of 'secagg-num-shares' "
            f"and less than it (> {num_shares / 2:g} and < {num_shares}), got {threshold}"
        )


def validate_secagg(
    cfg: SecAggConfig,
    num_sites: int,
    *,
    quantization_range: int = QUANTIZATION_RANGE,
    modulus_range: int = MODULUS_RANGE,
) -> None:
    """Refuse SecAgg+ settings that Flower would reject, fix up or overflow with.

    Parameters
    ----------
    cfg : SecAggConfig
        The run's SecAgg+ settings.
    num_sites : int
        How many sites take part in each round (at least 2 for any secure sum).
    quantization_range, modulus_range : int
        Flower's integer ranges (defaults 2**22 and 2**32).

    Raises
    ------
    ConfigError
        Naming the key to change and the allowed range.
    """
    if num_sites < 3:
        raise ConfigError(
            f"SecAgg+ needs at least 3 sites per round, the run has {num_sites}: raise "
            "'min-sites' or set 'secagg = false'"
        )
    _check_shares(cfg.num_shares, cfg.threshold, num_sites)
    if not cfg.clipping_range > 0:
        raise ConfigError(
            f"config key 'secagg-clipping-range' must be > 0, got {cfg.clipping_range}"
        )
    if not cfg.max_weight > 0:
        raise ConfigError(f"config key 'secagg-max-weight' must be > 0, got {cfg.max_weight}")
    if modulus_range & (modulus_range - 1) or modulus_range <= quantization_range:
        raise ConfigError("the SecAgg+ modulus must be a power of 2 above the quantisation range")
    # Every site contributes integers in [0, quantization_range] (weights and parameters
    # alike); the server sums them modulo `modulus_range`, so the sum must stay below it.
    if num_sites * quantization_range >= modulus_range:
        raise ConfigError(
            f"{num_sites} sites overflow the SecAgg+ modulus: at most "
            f"{modulus_range // quantization_range - 1} sites fit with the quantisation range "
            f"2**{quantization_range.bit_length() - 1}; split the federation"
        )


def check_update_fits(
    arrays: Sequence[NDArray[np.floating]],
    num_examples: int,
    max_weight: float,
    clipping_range: float,
) -> None:
    """Refuse a site update that SecAgg+ would clip or overflow.

    Parameters
    ----------
    arrays : Sequence[NDArray]
        The update's parameters, as they will be masked.
    num_examples : int
        The site's weight in the average.
    max_weight, clipping_range : float
        The run's `secagg-max-weight` and `secagg-clipping-range`.

    Raises
    ------
    UpdateError
        Saying which setting to raise. The message holds counts and magnitudes only.
    """
    if num_examples > max_weight:
        raise UpdateError(
            f"this site trained on {num_examples} examples, more than 'secagg-max-weight' "
            f"({max_weight:g}); raise 'secagg-max-weight' to at least {num_examples}"
        )
    largest = max((float(np.max(np.abs(a))) for a in arrays if np.size(a)), default=0.0)
    if not np.isfinite(largest):
        raise UpdateError("the update holds NaN or Inf values; check the learning rate")
    if largest > clipping_range:
        raise UpdateError(
            f"an update value of magnitude {largest:.4g} exceeds 'secagg-clipping-range' "
            f"({clipping_range:g}); raise 'secagg-clipping-range' above {largest:.4g}"
        )
