"""Client mods: no site-local detail in errors sent to the server; SecAgg+ enforcement."""

import pytest
from flwr.app import Context, Message, RecordDict
from flwr.common import MessageType

from client.mods import privacy_guard_mod, secagg_mod
from shared.errors import DataError

pytestmark = pytest.mark.usefixtures("flower_task_identity")


def _msg(kind: str = MessageType.TRAIN) -> Message:
    return Message(RecordDict(), dst_node_id=1, message_type=kind)


def _ctx(node_config: dict | None = None) -> Context:
    return Context(
        run_id=1, node_id=1, node_config=node_config or {}, state=RecordDict(), run_config={}
    )


def test_foreign_exception_text_never_reaches_the_server() -> None:
    # Prepare
    def failing(msg: Message, ctx: Context) -> Message:
        raise OSError("cannot open /data/PACS/DOE^JOHN/IM0001.dcm")

    # Execute
    reply = privacy_guard_mod(_msg(), _ctx(), failing)

    # Assert
    assert reply.has_error()
    assert "OSError" in reply.error.reason
    assert "/data" not in reply.error.reason and "DOE" not in reply.error.reason


def test_medfleet_errors_keep_their_safe_message() -> None:
    # Prepare
    def failing(msg: Message, ctx: Context) -> Message:
        raise DataError("site has no labels.csv")

    # Execute
    reply = privacy_guard_mod(_msg(), _ctx(), failing)

    # Assert
    assert reply.error.reason.startswith("DataError: site has no labels.csv (site log ")


def test_site_requiring_secagg_refuses_a_plain_train_request() -> None:
    # Prepare
    called = []

    def app(msg: Message, ctx: Context) -> Message:
        called.append(msg)
        return Message(RecordDict(), reply_to=msg)

    # Execute
    refused = secagg_mod(_msg(), _ctx({"require-secagg": True}), app)
    plain = secagg_mod(_msg(), _ctx(), app)
    evaluate = secagg_mod(_msg(MessageType.EVALUATE), _ctx({"require-secagg": True}), app)

    # Assert
    assert refused.has_error() and "secagg" in refused.error.reason
    assert not plain.has_error() and not evaluate.has_error()
    assert len(called) == 2
