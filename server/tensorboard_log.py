"""TensorBoard event files of every round's metrics (run-config key `tensorboard`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.report_data import OVERALL, is_score
from shared.errors import ConfigError

__all__ = ["TensorBoardLog"]


class TensorBoardLog:
    """Per-round scalars in ``log_dir``: one TensorBoard run per site and one overall.

    Each run folder holds the tags ``fit/<metric>`` and ``evaluate/<metric>`` with the
    round as step, so TensorBoard draws every site's curve of a metric on one chart.
    Counts (confusion, ROC) and the sites' data reports are left out, as in the report.

    Parameters
    ----------
    log_dir : Path
        The run's ``tensorboard`` folder.
    first_round : int
        The first round this log writes; a resumed run drops its earlier files' events
        from this round on (TensorBoard's purge step), so a redone round shows once.
    """

    def __init__(self, log_dir: Path, first_round: int = 1) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ConfigError(
                "config key 'tensorboard' is true but the tensorboard package is not "
                "installed on the server: `pip install tensorboard`, or set tensorboard = false"
            ) from err
        self.log_dir = Path(log_dir)
        self._writer_class = SummaryWriter
        self._purge = first_round if first_round > 1 else None
        self._writers: dict[str, Any] = {}

    def add_stage(
        self,
        stage: str,
        server_round: int,
        per_site: Mapping[str, Mapping[str, Any]],
        aggregated: Mapping[str, Any],
    ) -> None:
        """Write one stage ('fit' or 'evaluate') of a round: overall and each site."""
        for name, metrics in [(OVERALL, aggregated), *sorted(per_site.items())]:
            writer = self._writer(name)
            for key, value in metrics.items():
                if is_score(key, value) and value is not None:
                    writer.add_scalar(f"{stage}/{key}", float(value), server_round)
            writer.flush()

    def close(self) -> None:
        """Flush and close every run's event file."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _writer(self, name: str) -> Any:
        if name not in self._writers:
            folder = self.log_dir / _folder_name(name)
            self._writers[name] = self._writer_class(str(folder), purge_step=self._purge)
        return self._writers[name]


def _folder_name(site: str) -> str:
    """A site name as a safe folder name (a site names itself: never trust it as a path)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", site)[:64]
    return cleaned or "unnamed"
