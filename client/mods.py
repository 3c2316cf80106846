"""Client mods: keep site-local details at the site, and enforce SecAgg+ when required."""

from __future__ import annotations

import logging
import uuid

from flwr.app import Context, Error, Message
from flwr.client.mod import secaggplus_mod
from flwr.common import MessageType
from flwr.common.constant import ErrorCode
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from shared.errors import reason_for_server

__all__ = ["privacy_guard_mod", "secagg_mod"]

logger = logging.getLogger("medfleet.site")


def privacy_guard_mod(msg: Message, ctxt: Context, call_next) -> Message:  # type: ignore[no-untyped-def]
    """Turn any exception into an error reply that carries no site-local detail.

    Flower sends an exception's text to the server. Text from arbitrary code (pydicom,
    torch, OS errors) can hold file paths or header values, so only what
    `shared.errors.reason_for_server` allows travels: a MedFleetError's public message,
    else the exception's class name. Both carry a reference to the site's log entry,
    which holds the full text and traceback.
    """
    try:
        return call_next(msg, ctxt)
    except Exception as err:  # noqa: BLE001 - every failure must be scrubbed
        log_ref = uuid.uuid4().hex[:12]
        logger.exception("site task failed [site log %s] (details stay at the site)", log_ref)
        return Message(
            Error(
                code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                reason=reason_for_server(err, log_ref),
            ),
            reply_to=msg,
        )


def secagg_mod(msg: Message, ctxt: Context, call_next) -> Message:  # type: ignore[no-untyped-def]
    """Run Flower's secaggplus_mod for SecAgg+ rounds; plain rounds pass through.

    With node config `require-secagg = true` (the site daemon's default) a plain train
    request is refused, so a misconfigured server can never receive an unmasked update.
    """
    is_train = msg.metadata.message_type == MessageType.TRAIN
    if is_train and RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    if is_train and bool(ctxt.node_config.get("require-secagg", False)):
        reason = (
            "this site requires SecAgg+ (node config 'require-secagg'); the server must run "
            "with run config 'secagg=true'"
        )
        return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=msg)
    return call_next(msg, ctxt)
