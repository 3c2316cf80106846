"""Flower's HTTP clients retry a server error (HTTP 500) as they retry a 502-504.

Flower 1.42's retry (`flwr.supercore.retry.http_retry`) treats 502, 503 and 504 as
passing and any other status as final. A SuperLink whose state database stays locked
past its wait answers 500 ("database is locked"): a site's SuperNode then gave up its
connection, and a ServerApp its run. `retry_server_errors` adds 500 to the passing ones
in the process that calls it (the site's SuperNode, the ServerApp), so such a moment
costs a retry with Flower's backoff and its log line ("Connection attempt failed,
retrying in ... seconds"), not the connection or the run.
"""

from __future__ import annotations

__all__ = ["retry_server_errors"]


def retry_server_errors() -> bool:
    """Make Flower's HTTP retry in this process retry a 500; False if it retries differently."""
    try:
        import httpx
        from flwr.supercore.retry import http_retry
    except ImportError:
        return False
    codes = getattr(http_retry, "_RETRYABLE_STATUS_CODES", None)
    if not isinstance(codes, frozenset):
        return False
    http_retry._RETRYABLE_STATUS_CODES = codes | {httpx.codes.INTERNAL_SERVER_ERROR}
    return True
