"""Client mods: keep site-local details at the site, and enforce SecAgg+ when required."""

from __future__ import annotations

import logging

from flwr.app import Context, Error, Message
from flwr.client.mod import secaggplus_mod
from flwr.common import MessageType
from flwr.common.constant import ErrorCode
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from shared.errors import MedFleetError

__all__ = ["privacy_guard_mod", "secagg_mod"]

logger = logging.getLogger("medfleet.site")


def privacy_guard_mod(msg: Message, ctxt: Context, call_next) -> Message:  # type: ignore[no-untyped-def]
    """Turn any exception into an error reply that carries no site-local detail.

    Flower sends an exception's text to the server. Text from arbitrary code (pydicom,
    torch, OS errors) can hold file paths or header values, so only MedFleet's own
    messages (written to be safe) and the exception type travel; the full traceback is
    logged at the site.
    """
    try:
        return call_next(msg, ctxt)
    except Exception as err:  # noqa: BLE001 - every failure must be scrubbed
        logger.exception("site task failed (details stay at the site)")
        if isinstance(err, MedFleetError):
            reason = f"{type(err).__name__}: {err}"
        else:
            reason = f"{type(err).__name__} at the site; the site's log has the details"
        return Message(
            Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg
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
