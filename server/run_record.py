"""The machine-readable run record (run.json) and the per-round table shown to the user."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from server.report import write_report_quietly
from server.tensorboard_log import TensorBoardLog
from shared.config import RunConfig

__all__ = ["RunRecorder", "timestamp"]

logger = logging.getLogger("medfleet.server")

OVERALL = "overall (weighted)"


class RunRecorder:
    """Collects per-round, per-site and aggregated metrics; rewrites run.json each round.

    Every write is atomic (temp file + rename), so a crash mid-run leaves the record of
    all completed rounds intact; a resumed run continues the same record (see
    `resume_after`), noting each resumption under "resumes". With ``tensorboard = true``
    every stage also goes to TensorBoard event files in ``tensorboard/``; `finish`
    writes report.html beside run.json, whether the run completed or failed.
    """

    def __init__(
        self,
        out_dir: Path,
        run: RunConfig,
        table_metrics: Sequence[str],
        resume_after: int | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.path = out_dir / "run.json"
        self.table_metrics = tuple(table_metrics)
        self.console = Console(width=max(100, Console().width))
        if resume_after is None:
            self.record: dict[str, Any] = {
                "medfleet_version": _version(),
                "task": run.task,
                "config": run.to_mapping(),
                "started": timestamp(),
                "finished": None,
                "status": "running",
                "resumes": [],
                "rounds": [],
            }
        else:
            self.record = self._resumed(run, resume_after)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.tensorboard: TensorBoardLog | None = None
        #: Inside `one_write`: None, or whether a write was held back (True) or not yet.
        self._held: bool | None = None
        if run.option("tensorboard"):
            self.tensorboard = TensorBoardLog(out_dir / "tensorboard", (resume_after or 0) + 1)
        self._write()

    def _resumed(self, run: RunConfig, after: int) -> dict[str, Any]:
        """The interrupted run's record: rounds up to `after` kept, later ones dropped."""
        record = json.loads(self.path.read_text())
        kept = [r for r in record.get("rounds", []) if r["round"] <= after]
        lost = sorted({r["round"] for r in record.get("rounds", [])} - {r["round"] for r in kept})
        record["resumes"] = [
            *record.get("resumes", []),
            {"at": timestamp(), "after_round": after, "discarded_partial_rounds": lost},
        ]
        record.update(rounds=kept, status="running", finished=None, config=run.to_mapping())
        record.pop("cross_site", None)  # the resumed run scores its own final model
        return record

    def _round(self, server_round: int) -> dict[str, Any]:
        for entry in self.record["rounds"]:
            if entry["round"] == server_round:
                return entry
        entry = {"round": server_round, "fit": None, "evaluate": None, "files": {}}
        self.record["rounds"].append(entry)
        return entry

    def record_stage(
        self,
        stage: str,
        server_round: int,
        per_site: Mapping[str, Mapping[str, Any]],
        aggregated: Mapping[str, float],
        failures: int,
    ) -> None:
        """Store one stage ('fit' or 'evaluate') of a round and rewrite run.json."""
        self._round(server_round)[stage] = {
            "sites": {name: _clean(m) for name, m in sorted(per_site.items())},
            "aggregated": _clean(aggregated),
            "failures": failures,
        }
        self._write()
        self._to_tensorboard(stage, server_round, per_site, aggregated)

    def _to_tensorboard(
        self,
        stage: str,
        server_round: int,
        per_site: Mapping[str, Mapping[str, Any]],
        aggregated: Mapping[str, float],
    ) -> None:
        """Write the stage's scalars; a failing event file is given up, never the run."""
        if self.tensorboard is None:
            return
        try:
            self.tensorboard.add_stage(stage, server_round, per_site, aggregated)
        except Exception as err:
            logger.warning(
                "TensorBoard log stopped (%s: %s); run.json is intact", type(err).__name__, err
            )
            self.tensorboard = None

    def record_sites(
        self,
        server_round: int,
        *,
        dropped: Sequence[str],
        refused: Sequence[str],
        errors: Sequence[str] = (),
    ) -> None:
        """Remember which sites dropped out of a round, whose updates were refused, and why."""
        self._round(server_round).update(
            dropped=list(dropped), refused=list(refused), errors=list(errors)
        )
        self._write()

    def record_privacy(self, server_round: int, privacy: Mapping[str, Any] | None) -> None:
        """Store the DP budget spent up to this round; the run's latest is kept on top."""
        if privacy is None:
            return
        self._round(server_round)["privacy"] = dict(privacy)
        self.record["privacy"] = {**privacy, "after_round": server_round}
        self._write()

    def record_timing(self, server_round: int, started: str, seconds: float, fit: float) -> None:
        """When the round started (UTC), how long it took, and how long its training took."""
        self._round(server_round).update(
            started=started, seconds=round(seconds, 3), fit_seconds=round(fit, 3)
        )
        self._write()

    def record_files(self, server_round: int, files: Mapping[str, str]) -> None:
        """Remember files written for a round (checkpoint, sample grid, ...)."""
        self._round(server_round)["files"].update(files)
        self._write()

    def stage_sites(self, stage: str, server_round: int) -> dict[str, dict[str, Any]]:
        """A recorded stage's metrics per site; empty when the round or stage is missing."""
        for entry in self.record["rounds"]:
            if entry["round"] == server_round and entry.get(stage):
                return {name: dict(m) for name, m in entry[stage]["sites"].items()}
        return {}

    def record_cross_site(self, table: Mapping[str, Any]) -> None:
        """Store the cross-site table ({"scores": {model: {site: metrics}}, ...})."""
        scores = {
            model: {site: _clean(metrics) for site, metrics in per_site.items()}
            for model, per_site in table["scores"].items()
        }
        self.record["cross_site"] = {**table, "scores": scores}
        self._write()

    def print_round(self, server_round: int) -> None:
        """Print the round's table: one row per site and the weighted overall row."""
        entry = self._round(server_round)
        rows: dict[str, dict[str, Any]] = {}
        for stage in ("fit", "evaluate"):
            if entry[stage]:
                for name, metrics in entry[stage]["sites"].items():
                    rows.setdefault(name, {}).update(metrics)
                rows.setdefault(OVERALL, {}).update(entry[stage]["aggregated"])
        table = Table(title=f"Round {server_round}/{self.record['config']['num-server-rounds']}")
        table.add_column("site")
        table.add_column("n val", justify="right")
        for name in self.table_metrics:
            table.add_column(name, justify="right")
        for name, metrics in sorted(rows.items(), key=lambda kv: kv[0] == OVERALL):
            cells = [_cell(metrics.get(m)) for m in self.table_metrics]
            n_val = metrics.get("num_examples_val")
            table.add_row(
                name,
                "" if n_val is None else str(int(n_val)),
                *cells,
                style="bold" if name == OVERALL else None,
            )
        table.caption = _privacy_caption(entry.get("privacy"))
        self.console.print(table)

    def finish(self, status: str, extra: Mapping[str, Any] | None = None) -> None:
        """Mark the run finished (or failed), write the final record and report.html.

        A report that cannot be built is a warning (`medfleet report` rebuilds it later),
        never a failed run.
        """
        self.record.update(status=status, finished=timestamp(), **(extra or {}))
        self._write()
        if self.tensorboard is not None:
            self.tensorboard.close()
        report = write_report_quietly(self.out_dir)
        if report is not None:
            logger.info("run report: %s", report)

    @contextmanager
    def one_write(self) -> Iterator[None]:
        """Hold back the writes of run.json inside the block and make them one at its end.

        A stage records four things at once (metrics, sites, DP budget, files); each
        write serialises the whole record, which grows with every round (170 KB after 20).
        The record is written at the end even when the block raises.
        """
        if self._held is not None:  # nested: the outer block writes
            yield
            return
        self._held = False
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                self._write()

    def _write(self) -> None:
        if self._held is not None:
            self._held = True
            return
        tmp = self.path.with_suffix(".json.tmp")
        with tmp.open("w") as handle:
            handle.write(json.dumps(self.record, indent=2, sort_keys=False))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


def _privacy_caption(privacy: Mapping[str, Any] | None) -> str | None:
    """One line under the round table: the DP budget spent so far."""
    if not privacy:
        return None
    epsilon = privacy.get("epsilon")
    spent = "unknown (no site reported it)" if epsilon is None else f"{epsilon:.3g}"
    unit = "one site's participation" if privacy["mode"] == "client" else "one example at a site"
    return (
        f"DP {privacy['mode']}: epsilon = {spent} at delta = {privacy['delta']:g} so far "
        f"({unit}; {privacy['accountant']})"
    )


def _clean(metrics: Mapping[str, Any]) -> dict[str, Any]:
    # JSON has no NaN: an undefined score (e.g. AUC with one class) is stored as null.
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def timestamp() -> str:
    """Now, as run.json writes times: local time with its UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medfleet")
    except PackageNotFoundError:
        return "unknown"
