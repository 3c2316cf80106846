"""The data report of one indexed folder: counts safe to share, file reasons kept local."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.dicom.reasons import reason_slug
from shared.errors import DataError

__all__ = ["DataReport"]


@dataclass
class DataReport:
    """What indexing a site's folder found.

    Attributes
    ----------
    files : int
        Files examined (known sidecars such as ``labels.csv`` and hidden files excluded).
    series : int
        Distinct series among the usable images.
    usable_by_modality : dict[str, int]
        Usable image instances per modality code.
    skipped_by_reason : dict[str, int]
        Skipped files per fixed reason label (see `SkipReason`).
    skipped_files : list[tuple[Path, str]]
        Site-local list of skipped files and their reason; never sent anywhere.
    """

    files: int = 0
    series: int = 0
    usable_by_modality: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_files: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def usable(self) -> int:
        """Total number of usable image instances."""
        return sum(self.usable_by_modality.values())

    @property
    def skipped(self) -> int:
        """Total number of skipped files."""
        return sum(self.skipped_by_reason.values())

    def add_skip(self, path: Path, reason: str) -> None:
        """Count one skipped file under `reason` and remember it locally."""
        self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + 1
        self.skipped_files.append((path, reason))

    def summary(self) -> dict[str, int]:
        """Return flat counts only, safe to send to the server.

        Returns
        -------
        dict[str, int]
            ``files``, ``series``, ``usable``, ``usable_<modality>``, ``skipped`` and
            ``skipped_<reason-slug>``; no path, UID or other header value.
        """
        counts = {"files": self.files, "series": self.series, "usable": self.usable}
        for modality, count in sorted(self.usable_by_modality.items()):
            counts[f"usable_{modality}"] = count
        counts["skipped"] = self.skipped
        for reason, count in sorted(self.skipped_by_reason.items()):
            key = f"skipped_{reason_slug(reason)}"
            counts[key] = counts.get(key, 0) + count
        return counts

    def headline(self) -> str:
        """Return a one-line summary of the counts (no path, safe to send).

        Returns
        -------
        str
            e.g. ``"12 files, 0 usable images, 12 skipped (truncated/corrupt 10, ...)"``.
        """
        by_count = sorted(self.skipped_by_reason.items(), key=lambda item: (-item[1], item[0]))
        reasons = ", ".join(f"{reason} {n}" for reason, n in by_count)
        skipped = f"{self.skipped} skipped" + (f" ({reasons})" if reasons else "")
        return f"{self.files} files, {self.usable} usable images, {skipped}"

    def require_usable(self) -> None:
        """Raise one clear `DataError` when the folder holds no usable image.

        Raises
        ------
        DataError
            Naming the counts per skip reason and the command that lists the files.
        """
        if self.usable:
            return
        if not self.files:
            raise DataError("site data folder holds no files: point data-dir at the DICOM export")
        raise DataError(
            f"site has no usable DICOM images ({self.headline()}); run "
            "`medfleet data check --verbose DIR` at the site to list the skipped files"
        )

    def format(self, verbose: bool = False) -> str:
        """Return the human-readable report.

        Parameters
        ----------
        verbose : bool
            Add one line per skipped file with its path and reason (site-local output).

        Returns
        -------
        str
            Multi-line text with counts; paths only when `verbose`.
        """
        lines = [
            f"files examined:   {self.files}",
            f"usable series:    {self.series}",
            f"usable images:    {self.usable}",
        ]
        lines += [f"  {m:<16}{n:>8}" for m, n in sorted(self.usable_by_modality.items())]
        lines.append(f"skipped files:    {self.skipped}")
        by_count = sorted(self.skipped_by_reason.items(), key=lambda item: (-item[1], item[0]))
        lines += [f"  {reason:<52}{n:>8}" for reason, n in by_count]
        if verbose and self.skipped_files:
            lines.append("skipped files (site-local, do not share):")
            lines += [f"  {path}: {reason}" for path, reason in sorted(self.skipped_files)]
        elif self.skipped_files:
            lines.append("(the verbose report lists each skipped file)")
        return "\n".join(lines)
