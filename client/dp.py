"""Site side of `dp = client`: clip the update (Flower's mod) and send it with weight 1."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flwr.app import Context, Error, Message
from flwr.client.mod import fixedclipping_mod
from flwr.common import MessageType
from flwr.common.constant import ErrorCode
from flwr.compat.common import recorddict_compat as compat

__all__ = ["dp_client_mod"]

Mod = Callable[[Message, Context, Callable[[Message, Context], Message]], Message]

#: Where Flower's DP wrapper puts the clipping norm in the fit instructions.
_CLIP_KEY = "clipping_norm"


def dp_client_mod(overrides: Mapping[str, Any] | None = None) -> Mod:
    """The mod that, with run config ``dp = client``, clips this site's update before it leaves.

    Flower's `fixedclipping_mod` clips the change from the global model to the norm the
    server sends; this mod first checks that norm is the run's ``dp-clip-norm`` (a server
    asking for a larger one is refused), and afterwards sets the update's weight to 1:
    the noise is calibrated to a plain mean, which weighting by example counts would
    break. The true count stays in the metrics as ``num_train``. Sits inside SecAgg+,
    so the update is clipped before it is masked. `overrides` fuse over the run config,
    as in the ClientApp's client_fn (`medfleet sim` passes its settings that way).
    """
    bound = dict(overrides or {})

    def mod(
        msg: Message, ctxt: Context, call_next: Callable[[Message, Context], Message]
    ) -> Message:
        run = {**ctxt.run_config, **bound}
        if msg.metadata.message_type != MessageType.TRAIN or run.get("dp") != "client":
            return call_next(msg, ctxt)
        return _clipped(msg, ctxt, call_next, float(run.get("dp-clip-norm", 1.0)))

    return mod


def _clipped(
    msg: Message, ctxt: Context, call_next: Callable[[Message, Context], Message], wanted: float
) -> Message:
    config = compat.recorddict_to_fitins(msg.content, keep_input=True).config
    asked = config.get(_CLIP_KEY)
    if not isinstance(asked, int | float) or float(asked) != wanted:
        reason = (
            f"the run asks for dp = 'client' with dp-clip-norm={wanted:g}, but the server sent "
            f"clipping norm {asked!r}: the server must wrap its strategy in site-level DP"
        )
        return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=msg)
    out = fixedclipping_mod(msg, ctxt, call_next)
    if out.has_error():
        return out
    res = compat.recorddict_to_fitres(out.content, keep_input=True)
    res.metrics["num_train"] = res.num_examples
    res.num_examples = 1
    out.content = compat.fitres_to_recorddict(res, keep_input=True)
    return out
