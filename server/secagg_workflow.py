"""Flower's SecAgg+ fit workflow, optionally recording what the server saw before unmasking."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
from flwr.app import Message
from flwr.common import bytes_to_ndarray
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp.grid import Grid

from shared.config import SecAggConfig
from shared.secagg import MODULUS_RANGE, QUANTIZATION_RANGE

__all__ = ["DropoutSafeSecAggPlusWorkflow", "RecordingSecAggPlusWorkflow", "build_fit_workflow"]

log = logging.getLogger("medfleet.server.secagg")


def build_fit_workflow(cfg: SecAggConfig, record_dir: Path | None) -> DropoutSafeSecAggPlusWorkflow:
    """Return the SecAgg+ fit workflow for a run.

    Parameters
    ----------
    cfg : SecAggConfig
        Validated settings (see `shared.secagg.validate_secagg`).
    record_dir : Path | None
        Test/debug only: when given, every round's masked vectors are saved there.

    Returns
    -------
    DropoutSafeSecAggPlusWorkflow
        Flower's workflow (with dropouts before masking handled), or the recording
        subclass when `record_dir` is set.
    """
    kwargs: dict[str, Any] = {
        "num_shares": cfg.num_shares,
        "reconstruction_threshold": cfg.threshold,
        "max_weight": cfg.max_weight,
        "clipping_range": cfg.clipping_range,
        "quantization_range": QUANTIZATION_RANGE,
        "modulus_range": MODULUS_RANGE,
    }
    if record_dir is None:
        return DropoutSafeSecAggPlusWorkflow(**kwargs)
    return RecordingSecAggPlusWorkflow(record_dir=record_dir, **kwargs)


class DropoutSafeSecAggPlusWorkflow(SecAggPlusWorkflow):
    """Flower's SecAgg+ workflow, also surviving sites that drop out before sharing keys.

    Flower counts every sampled site as a dropout to unmask, so a site that died before
    sending its key shares (in the setup or share-keys stage) halts the round: nobody
    holds shares of its key ("Not enough shares"), and the other sites fail asking for
    them. Such a site added no mask to any upload, so after each of those two stages
    the sites that stopped answering are forgotten; dropouts from the masking stage on
    are unmasked as Flower does.
    """

    def setup_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        return self._forget_silent(state, super().setup_stage(grid, context, state))

    def share_keys_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        return self._forget_silent(state, super().share_keys_stage(grid, context, state))

    def _forget_silent(self, state: WorkflowState, ok: bool) -> bool:
        """Leave out the sites that did not answer; check the threshold without them."""
        silent = state.sampled_node_ids - state.active_node_ids
        if not silent:
            return ok
        log.warning("SecAgg+: %d sites did not answer before masking; left out", len(silent))
        state.sampled_node_ids = set(state.active_node_ids)
        # Fewer than two sites could not hide each other's updates.
        return len(state.active_node_ids) >= 2 and self._check_threshold(state)


class _RecordingGrid:
    """A Grid stand-in that keeps the replies of `send_and_receive` and forwards the rest."""

    def __init__(self, grid: Grid) -> None:
        self._grid = grid
        self.replies: list[Message] = []

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self.replies.extend(replies)
        return replies

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


class RecordingSecAggPlusWorkflow(DropoutSafeSecAggPlusWorkflow):
    """SecAggPlusWorkflow that saves the masked vectors it receives (tests and audits only).

    For round r it writes `round-<r>-masked.npz` holding `sum_<i>` (the masked sum,
    modulo the modulus, before unmasking: what Flower keeps in `state.aggregate_ndarrays`)
    and `node<id>_<i>` (each site's masked upload). Index 0 is SecAgg+'s weight factor;
    indices 1.. are the model arrays in state-dict order.
    """

    def __init__(self, *args: Any, record_dir: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record_dir = record_dir

    def collect_masked_vectors_stage(
        self, grid: Grid, context: LegacyContext, state: WorkflowState
    ) -> bool:
        """Run Flower's stage, then save the masked uploads and their masked sum."""
        recorder = _RecordingGrid(grid)
        ok = super().collect_masked_vectors_stage(cast(Grid, recorder), context, state)
        configs = context.state.config_records[MAIN_CONFIGS_RECORD]
        current_round = cast(int, configs[WorkflowKey.CURRENT_ROUND])
        arrays: dict[str, np.ndarray] = {}
        for msg in recorder.replies:
            if msg.has_error():
                continue
            uploads = msg.content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]
            for i, raw in enumerate(cast(list[bytes], uploads)):
                arrays[f"node{msg.metadata.src_node_id}_{i}"] = bytes_to_ndarray(raw)
        for i, arr in enumerate(getattr(state, "aggregate_ndarrays", [])):
            arrays[f"sum_{i}"] = arr
        self.record_dir.mkdir(parents=True, exist_ok=True)
        path = self.record_dir / f"round-{current_round}-masked.npz"
        np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds badly
        log.info("recorded %d masked uploads of round %d", len(recorder.replies), current_round)
        return ok
