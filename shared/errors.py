"""Project exceptions: every message names the bad key or file kind and says how to fix it."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "MedFleetError",
    "ProvisioningError",
    "RoundError",
    "UpdateError",
]


class MedFleetError(Exception):
    """Base class of every error MedFleet raises on purpose.

    Messages must never hold a patient identifier, a DICOM header value or a file path
    when they can reach the server; site-local reports may name paths.
    """


class ConfigError(MedFleetError, ValueError):
    """A run, node or federation setting is missing or out of range."""


class DataError(MedFleetError):
    """A site's data cannot be used (no usable images, missing labels, ...)."""


class UpdateError(MedFleetError):
    """A model update is unusable (wrong shapes, NaN or Inf values)."""


class ProvisioningError(MedFleetError):
    """Keys, certificates or kits are missing, unsafe or inconsistent."""


class RoundError(MedFleetError):
    """A federated round cannot complete (too few sites replied in time, nothing usable)."""
