"""SecAgg+ settings refused up front, updates refused before masking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState

from server.secagg_workflow import (
    DropoutSafeSecAggPlusWorkflow,
    RecordingSecAggPlusWorkflow,
    build_fit_workflow,
)
from shared.config import SecAggConfig
from shared.errors import ConfigError, UpdateError
from shared.secagg import check_update_fits, validate_secagg


def cfg(**changes: object) -> SecAggConfig:
    base: dict[str, object] = {"enabled": True, "num_shares": 3, "threshold": 2}
    base.update(changes)
    return SecAggConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "num_sites"),
    [({}, 3), ({"num_shares": 5, "threshold": 3}, 9), ({"num_shares": 4, "threshold": 3}, 4)],
)
def test_valid_settings_pass_and_flower_accepts_them(changes: dict, num_sites: int) -> None:
    # Execute
    validate_secagg(cfg(**changes), num_sites)
    workflow = build_fit_workflow(cfg(**changes), None)
    # Assert
    assert type(workflow) is DropoutSafeSecAggPlusWorkflow
    assert isinstance(workflow, SecAggPlusWorkflow)
    assert workflow.num_shares == cfg(**changes).num_shares


@pytest.mark.parametrize(
    ("changes", "num_sites", "key"),
    [
        ({}, 2, "at least 3 sites"),
        ({"num_shares": 2}, 3, "secagg-num-shares"),
        ({"num_shares": 5, "threshold": 3}, 4, "must not exceed"),
        ({"num_shares": 4, "threshold": 3}, 7, "must be odd"),
        ({"threshold": 3}, 3, "secagg-threshold"),
        ({"num_shares": 5, "threshold": 2}, 5, "more than half"),
        ({"clipping_range": 0.0}, 3, "secagg-clipping-range"),
        ({"max_weight": 0.0}, 3, "secagg-max-weight"),
        ({}, 1024, "overflow the SecAgg\\+ modulus"),
    ],
)
def test_bad_settings_are_refused(changes: dict, num_sites: int, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        validate_secagg(cfg(**changes), num_sites)


def test_largest_federation_that_fits() -> None:
    # Execute / Assert: 1023 sites fit the modulus, one more overflows it
    assert validate_secagg(cfg(num_shares=5, threshold=3), 1023) is None
    with pytest.raises(ConfigError, match="overflow the SecAgg\\+ modulus"):
        validate_secagg(cfg(num_shares=5, threshold=3), 1024)


def test_update_within_limits_passes() -> None:
    check_update_fits([np.full((2, 2), 7.9), np.zeros(0)], 100, 100.0, 8.0)


def test_too_many_examples_names_max_weight() -> None:
    with pytest.raises(UpdateError, match="raise 'secagg-max-weight' to at least 101"):
        check_update_fits([np.zeros(3)], 101, 100.0, 8.0)


def test_value_outside_clipping_range_names_clipping_range() -> None:
    with pytest.raises(UpdateError, match="raise 'secagg-clipping-range' above 9"):
        check_update_fits([np.zeros(3), np.array([0.5, -9.0])], 10, 100.0, 8.0)


def test_non_finite_update_is_refused() -> None:
    with pytest.raises(UpdateError, match="NaN or Inf"):
        check_update_fits([np.array([np.nan])], 10, 100.0, 8.0)


def test_recording_workflow_when_asked(tmp_path: Path) -> None:
    workflow = build_fit_workflow(cfg(), tmp_path)
    assert isinstance(workflow, RecordingSecAggPlusWorkflow)
    assert workflow.record_dir == tmp_path


def _state(sampled: set[int], active: set[int], threshold: int = 2) -> WorkflowState:
    ring = sorted(sampled)
    neighbours = {n: {ring[(i + k) % len(ring)] for k in (-1, 0, 1)} for i, n in enumerate(ring)}
    return WorkflowState(
        sampled_node_ids=set(sampled),
        active_node_ids=set(active),
        threshold=threshold,
        nid_to_neighbours=neighbours,
    )


def test_site_silent_before_masking_is_forgotten() -> None:
    # Prepare: 4 sites, site 4 never answered the setup stage
    state = _state({1, 2, 3, 4}, {1, 2, 3})
    # Execute
    ok = build_fit_workflow(cfg(), None)._forget_silent(state, ok=True)
    # Assert: not a dropout to unmask any more; every remaining site has 2 live holders
    assert ok is True
    assert state.sampled_node_ids == {1, 2, 3}
    assert state.sampled_node_ids - state.active_node_ids == set()


def test_too_few_sites_left_before_masking_halts() -> None:
    # Prepare: sites 2 and 4 silent, so sites 1 and 3 each keep one live share holder
    state = _state({1, 2, 3, 4}, {1, 3})
    # Execute
    ok = build_fit_workflow(cfg(), None)._forget_silent(state, ok=True)
    # Assert
    assert ok is False
    assert state.sampled_node_ids == {1, 3}


def test_no_silent_site_keeps_flowers_verdict() -> None:
    state = _state({1, 2, 3}, {1, 2, 3})
    assert build_fit_workflow(cfg(), None)._forget_silent(state, ok=False) is False
