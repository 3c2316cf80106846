"""Test-only faults (`debug-attack`): poisoned updates, and a task that raises mid-run.

Honoured only by test sites: a poisoned update by simulated sites, a raise also by a
deployed site its admin started with the `debug-dump-dir` node config (test fleets).
A server can never make a real hospital's site do either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from shared.errors import ConfigError

__all__ = ["Attack", "InjectedFault", "InjectedRaise", "parse_attack"]

_SPEC = re.compile(
    r"^(?P<site>[\w.-]+):(?:(?P<kind>scale|sign-flip)(?:=(?P<factor>[0-9.eE+-]+))?"
    r"|raise=round(?P<round>[0-9]+))$"
)


class InjectedFault(RuntimeError):
    """What a broken library might raise: its text quotes a file path and header values."""


@dataclass(frozen=True)
class Attack:
    """One malicious site's rule: send `global + factor * change` (sign-flip: `-factor`)."""

    site: str
    factor: float

    def apply(self, global_arrays: Sequence[np.ndarray], local: Sequence[np.ndarray]) -> list:
        """The poisoned update; integer tensors (counters) are left as trained."""
        out = []
        for before, after in zip(global_arrays, local, strict=True):
            if np.issubdtype(after.dtype, np.floating):
                after = (before + self.factor * (after - before)).astype(after.dtype)
            out.append(after)
        return out


@dataclass(frozen=True)
class InjectedRaise:
    """`SITE:raise=roundN`: the site's task fails in round N with an identifying message."""

    site: str
    server_round: int

    def check(self, site: str, server_round: int, data_dir: Path) -> None:
        """Raise InjectedFault naming a file of ``data_dir`` and its patient, when due."""
        if site != self.site or server_round != self.server_round:
            return
        path = next(iter(sorted(data_dir.rglob("*.dcm"))), data_dir)
        patient = "unknown"
        if path.is_file():
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            patient = f"{ds.get('PatientName', '')} ({ds.get('PatientID', '')})"
        raise InjectedFault(f"cannot decode {path}: patient {patient}, round {server_round}")


def parse_attack(spec: str) -> Attack | InjectedRaise | None:
    """Parse `SITE:scale=F` (change times F), `SITE:sign-flip[=F]` (change times -F) or
    `SITE:raise=roundN` (the site's task raises in round N).

    Raises
    ------
    ConfigError
        When the spec does not have one of these forms.
    """
    if not spec:
        return None
    match = _SPEC.match(spec)
    if match is None:
        raise ConfigError(
            "config key 'debug-attack' must be 'SITE:scale=F', 'SITE:sign-flip[=F]' or "
            f"'SITE:raise=roundN', got {spec!r}"
        )
    if match["round"] is not None:
        return InjectedRaise(match["site"], int(match["round"]))
    factor = float(match["factor"] or 1.0)
    return Attack(match["site"], -factor if match["kind"] == "sign-flip" else factor)
