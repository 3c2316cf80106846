"""Test/audit only: save every site reply and failure exactly as the strategy received it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["dump_received"]


def dump_received(
    folder: Path, stage: str, server_round: int, results: Sequence[Any], failures: Sequence[Any]
) -> Path:
    """Write the replies and failures of one stage to ``folder`` (run config `debug-record-masked`).

    The replies' metrics, counts and status go to ``round-<r>-<stage>.json``, the raw
    bytes of their parameters to ``round-<r>-<stage>.bin``, and each failure's type,
    text and error reason to the JSON, so a test can search all the server was given.

    Returns
    -------
    pathlib.Path
        The JSON file written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"round-{server_round}-{stage}"
    replies, blobs = [], []
    for proxy, res in results:
        parameters = getattr(res, "parameters", None)
        tensors = list(getattr(parameters, "tensors", []) or [])
        blobs.extend(tensors)
        replies.append(
            {
                "node_id": getattr(proxy, "node_id", None),
                "num_examples": res.num_examples,
                "metrics": {k: _plain(v) for k, v in dict(res.metrics).items()},
                "status": str(getattr(res, "status", "")),
                "loss": _plain(getattr(res, "loss", None)),
                "tensor_bytes": sum(len(t) for t in tensors),
            }
        )
    errors = [_failure(failure) for failure in failures]
    stem.with_suffix(".bin").write_bytes(b"".join(blobs))
    path = stem.with_suffix(".json")
    path.write_text(json.dumps({"replies": replies, "failures": errors}, indent=1) + "\n")
    return path


def _failure(failure: Any) -> dict[str, str]:
    if isinstance(failure, BaseException):
        args = [repr(a) for a in failure.args]
        reason = getattr(failure.args[0], "reason", "") if failure.args else ""
        return {"type": type(failure).__name__, "text": str(failure), "args": "; ".join(args),
                "reason": str(reason)}  # fmt: skip
    return {"type": type(failure).__name__, "text": repr(failure), "args": "", "reason": ""}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
