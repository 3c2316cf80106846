"""Flower's object pulls retry after 0.05 s instead of 1 s, then back off as Flower does.

A Flower message carries its arrays as separate objects. The receiving process asks for
each one, and when it is not there yet (still in transit from the SuperLink to the
SuperNode, or from a site's reply) waits 1 s, then 2 s, 4 s... up to 10 s before asking
again (`flwr.supercore.inflatable.inflatable_utils`). In a deployment the ClientApp always
asks before its SuperNode has all of them, so every message cost 1 to 3 s of waiting: a
SecAgg+ round with five messages a site spent most of its time there.

`quicker_object_pulls` lowers only the first wait, in the process that calls it (the
SuperNode, the ClientApp launcher, the ServerApp); the doubling, the 10 s cap and the
2-hour limit stay Flower's, so a large model on a slow link is asked for no more often.
"""

from __future__ import annotations

__all__ = ["FIRST_RETRY_S", "quicker_object_pulls"]

#: First wait before asking again for an object that is not there yet (Flower: 1 s).
FIRST_RETRY_S = 0.05


def quicker_object_pulls(first_retry_s: float = FIRST_RETRY_S) -> bool:
    """Make Flower's object pulls in this process first retry after `first_retry_s`.

    Returns False (and changes nothing) when this Flower release pulls differently.
    """
    try:
        from flwr.supercore.inflatable import inflatable_utils
    except ImportError:
        return False
    functions = (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree)
    defaults = [getattr(fn, "__kwdefaults__", None) or {} for fn in functions]
    if not all("initial_backoff" in d for d in defaults):
        return False
    for keyword_defaults in defaults:
        keyword_defaults["initial_backoff"] = min(
            float(keyword_defaults["initial_backoff"]), first_retry_s
        )
    return True
