"""Test-only poisoned updates (`debug-attack`), honoured by simulated sites and nowhere else."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.errors import ConfigError

__all__ = ["Attack", "parse_attack"]

_SPEC = re.compile(r"^(?P<site>[\w.-]+):(?P<kind>scale|sign-flip)(?:=(?P<factor>[0-9.eE+-]+))?$")


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


def parse_attack(spec: str) -> Attack | None:
    """Parse `SITE:scale=F` (change times F) or `SITE:sign-flip[=F]` (change times -F).

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
            "config key 'debug-attack' must be 'SITE:scale=F' or 'SITE:sign-flip[=F]', "
            f"got {spec!r}"
        )
    factor = float(match["factor"] or 1.0)
    return Attack(match["site"], -factor if match["kind"] == "sign-flip" else factor)
