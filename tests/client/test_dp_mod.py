"""dp = client at the site: every update leaves clipped to dp-clip-norm, with weight 1."""

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict
from flwr.common import (
    Code,
    FitIns,
    FitRes,
    MessageType,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat

from client.dp import dp_client_mod

GLOBAL = [np.zeros((40, 30), np.float32), np.zeros(30, np.float32)]


pytestmark = pytest.mark.usefixtures("flower_task_identity")


def _train_msg(config: dict) -> Message:
    fit_ins = FitIns(ndarrays_to_parameters(GLOBAL), config)
    return Message(compat.fitins_to_recorddict(fit_ins, True), dst_node_id=1, message_type="train")


def _ctx(run_config: dict) -> Context:
    return Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config=run_config)


def _site_trains(scale: float):  # the site's local training: a change of known norm
    rng = np.random.default_rng(3)
    change = [rng.normal(size=a.shape).astype(np.float32) for a in GLOBAL]
    norm = float(np.sqrt(sum((c**2).sum() for c in change)))
    update = [g + scale * c / norm for g, c in zip(GLOBAL, change, strict=True)]

    def call_next(msg: Message, ctx: Context) -> Message:
        res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(update), 137, {"site": "a"})
        return Message(compat.fitres_to_recorddict(res, True), reply_to=msg)

    return call_next


def _sent(reply: Message) -> tuple[float, FitRes]:
    res = compat.recorddict_to_fitres(reply.content, keep_input=True)
    arrays = parameters_to_ndarrays(res.parameters)
    norm = float(np.sqrt(sum(((a - g) ** 2).sum() for a, g in zip(arrays, GLOBAL, strict=True))))
    return norm, res


@pytest.mark.parametrize(("change", "expected"), [(7.5, 2.0), (0.5, 0.5)])
def test_every_update_leaves_with_its_change_clipped_to_the_norm(
    change: float, expected: float
) -> None:
    # Prepare: the run's clipping norm is 2; the site's change has norm 7.5 (or 0.5)
    run = {"dp": "client", "dp-clip-norm": 2.0}
    mod = dp_client_mod()

    # Execute
    reply = mod(_train_msg({"clipping_norm": 2.0}), _ctx(run), _site_trains(change))

    # Assert: a large change is scaled down to the bound, a small one is left alone
    norm, res = _sent(reply)
    assert norm == pytest.approx(expected, rel=1e-5)
    assert (res.num_examples, res.metrics["num_train"]) == (1, 137)


def test_without_dp_the_update_and_its_weight_are_untouched() -> None:
    reply = dp_client_mod()(_train_msg({}), _ctx({"dp": "off"}), _site_trains(7.5))
    norm, res = _sent(reply)
    assert norm == pytest.approx(7.5, rel=1e-5)
    assert res.num_examples == 137


def test_simulation_overrides_switch_dp_on_like_the_run_config() -> None:
    mod = dp_client_mod({"dp": "client", "dp-clip-norm": 1.0})
    norm, _ = _sent(mod(_train_msg({"clipping_norm": 1.0}), _ctx({}), _site_trains(5.0)))
    assert norm == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("sent", [{}, {"clipping_norm": 50.0}])
def test_a_server_that_does_not_ask_for_the_runs_clipping_is_refused(sent: dict) -> None:
    # Prepare
    trained = []

    def call_next(msg: Message, ctx: Context) -> Message:
        trained.append(1)
        raise AssertionError("must not train")

    # Execute
    reply = dp_client_mod()(
        _train_msg(sent), _ctx({"dp": "client", "dp-clip-norm": 1.0}), call_next
    )

    # Assert: refused before training, naming what the server must do
    assert reply.has_error() and not trained
    assert "dp-clip-norm=1" in reply.error.reason
    assert "site-level DP" in reply.error.reason


def test_evaluate_requests_pass_through() -> None:
    calls = []

    def call_next(msg: Message, ctx: Context) -> Message:
        calls.append(msg.metadata.message_type)
        return Message(RecordDict(), reply_to=msg)

    msg = Message(RecordDict(), dst_node_id=1, message_type=MessageType.EVALUATE)
    dp_client_mod()(msg, _ctx({"dp": "client"}), call_next)
    assert calls == [MessageType.EVALUATE]
