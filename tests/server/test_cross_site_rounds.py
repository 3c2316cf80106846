"""Cross-site evaluation after the last round, run by Flower's evaluate workflow on a fake grid."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import flwr.compat.common.recorddict_compat as compat
import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import Code, EvaluateRes, Status, parameters_to_ndarrays
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.serverapp.grid import Grid

from server.cross_site import CrossSiteWorkflow
from server.run_record import RunRecorder
from shared.config import RunConfig
from shared.cross_site import GLOBAL, MODEL_KEY
from shared.errors import RoundError

SITES = {1: "site-a", 2: "site-b"}


class _Sites:
    """A grid whose sites score a model as its first weight plus 10 x their node id."""

    def __init__(self, failing: Iterable[str] = ()) -> None:
        self.sent: list[tuple[str, str]] = []
        self.failing = set(failing)

    def send_and_receive(self, messages: Iterable[Message], **_: Any) -> list[Message]:
        replies = []
        for message in messages:
            node = message.metadata.dst_node_id
            ins = compat.recorddict_to_evaluateins(message.content, True)
            self.sent.append((SITES[node], str(ins.config[MODEL_KEY])))
            if SITES[node] in self.failing:
                continue  # no reply within the round-timeout
            score = float(parameters_to_ndarrays(ins.parameters)[0][0]) + 10 * node
            metrics = {"site": SITES[node], "auc": score, "loss": 0.5}
            res = EvaluateRes(Status(Code.OK, ""), 0.5, 4, metrics)
            replies.append(Message(compat.evaluateres_to_recorddict(res), reply_to=message))
        return replies


def _context(
    tmp_path: Path, grid: _Sites, run: RunConfig, **strategy: Any
) -> tuple[LegacyContext, RunRecorder]:
    """A legacy context after `run`'s last round, its strategy a stand-in with `strategy`."""
    recorder = RunRecorder(tmp_path, run, ("auc",))
    recording = {
        "global_arrays": [np.array([0.25])],
        "local_models": {},
        "site_names": {},
        "evaluated": (0, set(), set()),
        "last_aggregated_round": run.num_rounds,
        "recorder": recorder,
        **strategy,
    }
    manager = SimpleClientManager()
    for node in SITES:
        manager.register(GridClientProxy(node, cast(Grid, grid), 1))
    state = RecordDict()
    state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: 0})
    state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord([np.zeros(1)])
    context = Context(run_id=1, node_id=0, node_config={}, state=state, run_config={})
    legacy = LegacyContext(
        context,
        config=ServerConfig(num_rounds=run.num_rounds),
        strategy=SimpleNamespace(**recording),  # type: ignore[arg-type]
        client_manager=manager,
    )
    return legacy, recorder


def _recorded(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "run.json").read_text())["cross_site"]


@pytest.mark.usefixtures("flower_task_identity")
def test_every_model_is_scored_at_every_site_and_the_table_goes_to_run_json(
    tmp_path: Path,
) -> None:
    # Prepare: two local models kept from the last round
    grid = _Sites()
    run = RunConfig.from_mapping({"num-server-rounds": 2, "cross-site-local": True})
    local = {"site-b": [np.array([2.0])], "site-a": [np.array([1.0])]}
    context, _ = _context(tmp_path, grid, run, local_models=local)

    # Execute
    CrossSiteWorkflow(run)(cast(Grid, grid), context)

    # Assert: 3 models x 2 sites, each cell the site's score of that model's weights
    table = _recorded(tmp_path)
    assert sorted(grid.sent) == sorted((s, m) for s in SITES.values() for m in table["models"])
    assert table["models"] == [GLOBAL, "site-a", "site-b"]
    assert table["sites"] == ["site-a", "site-b"]
    assert (table["main_metric"], table["global_from"], table["round"]) == (
        "auc",
        "cross-site pass",
        2,
    )
    for model, weight in ((GLOBAL, 0.25), ("site-a", 1.0), ("site-b", 2.0)):
        assert table["scores"][model]["site-a"] == {
            "auc": 10 + weight,
            "loss": 0.5,
            "num_examples_val": 4,
        }
        assert table["scores"][model]["site-b"]["auc"] == 20 + weight


@pytest.mark.usefixtures("flower_task_identity")
def test_the_last_rounds_evaluation_is_the_global_row_when_every_site_scored_it(
    tmp_path: Path,
) -> None:
    # Prepare: round 2 evaluated the final model at both connected sites
    grid = _Sites()
    run = RunConfig.from_mapping({"num-server-rounds": 2})
    context, recorder = _context(tmp_path, grid, run, evaluated=(2, {1, 2}, {1, 2}))
    round_2 = {s: {"site": s, "auc": 0.7, "num_examples_val": 3} for s in SITES.values()}
    recorder.record_stage("evaluate", 2, round_2, {"auc": 0.7}, 0)

    # Execute
    CrossSiteWorkflow(run)(cast(Grid, grid), context)

    # Assert: no second pass; the round's own per-site scores, the site name left out
    assert grid.sent == []
    table = _recorded(tmp_path)
    assert table["global_from"] == "round 2 evaluate"
    assert table["scores"] == {
        GLOBAL: {s: {"auc": 0.7, "num_examples_val": 3} for s in SITES.values()}
    }


@pytest.mark.usefixtures("flower_task_identity")
def test_a_site_the_last_evaluation_did_not_ask_gets_the_global_model_alone(
    tmp_path: Path,
) -> None:
    # Prepare: round 2's evaluation asked node 1 only (fraction-evaluate < 1)
    grid = _Sites()
    run = RunConfig.from_mapping({"num-server-rounds": 2})
    context, recorder = _context(tmp_path, grid, run, evaluated=(2, {1}, {1}))
    recorder.record_stage("evaluate", 2, {"site-a": {"site": "site-a", "auc": 0.7}}, {}, 0)

    # Execute
    CrossSiteWorkflow(run)(cast(Grid, grid), context)

    # Assert: site-a's cell from the round, site-b's from one pass sent to it only
    assert grid.sent == [("site-b", GLOBAL)]
    table = _recorded(tmp_path)
    assert table["global_from"] == "round 2 evaluate + cross-site pass"
    assert (table["scores"][GLOBAL]["site-a"]["auc"], table["scores"][GLOBAL]["site-b"]["auc"]) == (
        0.7,
        20.25,
    )


@pytest.mark.usefixtures("flower_task_identity")
def test_a_site_silent_in_the_last_evaluation_is_not_asked_again(tmp_path: Path) -> None:
    # Prepare: round 1 asked both nodes, node 2 never replied
    grid = _Sites()
    run = RunConfig.from_mapping({"num-server-rounds": 1, "cross-site-local": True})
    local = {"site-a": [np.array([1.0])]}
    context, recorder = _context(
        tmp_path, grid, run, evaluated=(1, {1, 2}, {1}), local_models=local
    )
    recorder.record_stage("evaluate", 1, {"site-a": {"site": "site-a", "auc": 0.7}}, {}, 0)

    # Execute
    CrossSiteWorkflow(run)(cast(Grid, grid), context)

    # Assert: no global pass, and the local model goes to site-a only
    assert grid.sent == [("site-a", "site-a")]
    table = _recorded(tmp_path)
    assert table["failures"] == {GLOBAL: 1, "site-a": 0}


@pytest.mark.usefixtures("flower_task_identity")
def test_a_silent_site_leaves_its_cells_empty_and_is_counted(tmp_path: Path) -> None:
    # Prepare
    grid = _Sites(failing=["site-b"])
    run = RunConfig.from_mapping({"num-server-rounds": 1, "cross-site-local": True})
    context, _ = _context(tmp_path, grid, run, local_models={"site-a": [np.array([1.0])]})

    # Execute
    CrossSiteWorkflow(run)(cast(Grid, grid), context)

    # Assert: the training run still has its table, with the cells that came
    table = _recorded(tmp_path)
    assert table["sites"] == ["site-a"]
    assert set(table["scores"][GLOBAL]) == set(table["scores"]["site-a"]) == {"site-a"}


@pytest.mark.usefixtures("flower_task_identity")
def test_evaluation_only_run_waits_for_min_sites_and_fails_when_no_site_scores(
    tmp_path: Path,
) -> None:
    # Prepare: an evaluation-only run of 2 sites that both stay silent
    grid = _Sites(failing=SITES.values())
    model = tmp_path / "m.pt"
    keys = {"num-server-rounds": 0, "evaluate-model": str(model), "round-timeout": 1}
    run = RunConfig.from_mapping(keys)
    context, _ = _context(tmp_path, grid, run)
    needs_three = RunConfig.from_mapping({**keys, "min-sites": 3})
    short, _ = _context(tmp_path / "short", grid, needs_three)

    # Execute / Assert
    with pytest.raises(RoundError, match="no site scored the model"):
        CrossSiteWorkflow(run)(cast(Grid, grid), context)
    with pytest.raises(RoundError, match="only 2 sites are connected.*min-sites=3"):
        CrossSiteWorkflow(needs_three)(cast(Grid, grid), short)
