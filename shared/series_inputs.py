"""Series-selection patterns: the ``MODALITY:DESCRIPTION_GLOB`` entries of `seg-inputs`."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from shared.errors import ConfigError

__all__ = ["SeriesPattern", "parse_series_inputs"]

_MODALITY = re.compile(r"^[A-Z0-9]{1,16}$")


@dataclass(frozen=True)
class SeriesPattern:
    """One series of a study to take as an input channel.

    Attributes
    ----------
    modality : str
        DICOM Modality code, upper case (``MR``, ``CT``, ``PT``).
    description : str
        Case-insensitive `fnmatch` glob of the Series Description (``T1*``, ``*flair*``).
    """

    modality: str
    description: str

    def matches(self, modality: str, description: str) -> bool:
        """Whether a series with this Modality and Series Description is this input."""
        return modality.strip().upper() == self.modality and fnmatch.fnmatchcase(
            description.strip().lower(), self.description.lower()
        )

    def __str__(self) -> str:
        return f"{self.modality}:{self.description}"


def parse_series_inputs(raw: str, key: str = "seg-inputs") -> tuple[SeriesPattern, ...]:
    """Parse ``"MR:T1*,MR:T2*"`` into patterns; the empty string gives no patterns.

    Parameters
    ----------
    raw : str
        Comma-separated ``MODALITY:SERIES_DESCRIPTION_GLOB`` entries; the first names the
        reference series (the one the labels are drawn on).
    key : str
        The config key, named in errors.

    Returns
    -------
    tuple of SeriesPattern
        In the order given: the order of the image channels.

    Raises
    ------
    ConfigError
        When an entry lacks its modality or glob, or two entries are the same.
    """
    entries = [part.strip() for part in str(raw).split(",")]
    if entries == [""]:
        return ()
    patterns = []
    for entry in entries:
        modality, sep, description = entry.partition(":")
        modality, description = modality.strip().upper(), description.strip()
        if not sep or not _MODALITY.match(modality) or not description:
            raise ConfigError(
                f"config key '{key}' needs comma-separated MODALITY:SERIES_DESCRIPTION_GLOB "
                f"entries, e.g. 'MR:T1*,MR:T2*' (the first is the labelled series), "
                f"got entry {entry!r}"
            )
        patterns.append(SeriesPattern(modality, description))
    if len(set(patterns)) != len(patterns):
        raise ConfigError(f"config key '{key}' names one series pattern twice: {raw!r}")
    return tuple(patterns)
