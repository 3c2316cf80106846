"""Deterministic patient-level train/validation split of a site's records."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["split_by_patient"]

T = TypeVar("T")


def split_by_patient(
    items: Sequence[T],
    patient_of: Callable[[T], str],
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[list[T], list[T]]:
    """Split items so that every patient's images fall on one side only.

    Patients are ordered by a seeded hash of their (already pseudonymous) key and the
    first `ceil(val_fraction * patients)` go to validation: the same data and seed give
    the same split on every round and every machine, and adding a patient moves no one.

    Parameters
    ----------
    items : sequence
        The records to split.
    patient_of : callable
        Returns a record's patient key.
    val_fraction : float
        Fraction of patients for validation, in (0, 1).
    seed : int
        Split seed.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    patients = sorted({patient_of(item) for item in items})
    if len(patients) < 2:
        return list(items), []

    def rank(patient: str) -> str:
        return hashlib.sha256(f"{seed}:{patient}".encode()).hexdigest()

    ordered = sorted(patients, key=rank)
    n_val = min(len(patients) - 1, max(1, math.ceil(val_fraction * len(patients))))
    val_patients = set(ordered[:n_val])
    train = [item for item in items if patient_of(item) not in val_patients]
    val = [item for item in items if patient_of(item) in val_patients]
    return train, val
