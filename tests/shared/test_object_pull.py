"""Flower's object pulls first retry after 0.05 s (was 1 s), doubling up to 1 s (was 10 s)."""

from __future__ import annotations

import threading

import pytest
from flwr.supercore.inflatable import inflatable_utils
from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError

from shared.object_pull import FIRST_RETRY_S, LONGEST_RETRY_S, quicker_object_pulls


class _RecordingEvent(threading.Event):
    waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:  # another user of threading.Event (the executor's own)
            return super().wait()
        _RecordingEvent.waits.append(timeout)
        return False  # the retry wait, recorded instead of slept


def _waits_for(monkeypatch: pytest.MonkeyPatch, unavailable: int) -> list[float]:
    """The retry waits of one pull whose object is missing `unavailable` times."""
    calls = []

    def pull(object_id: str) -> bytes:
        calls.append(object_id)
        if len(calls) <= unavailable:
            raise ObjectUnavailableError(object_id)
        return b"content"

    _RecordingEvent.waits = []
    monkeypatch.setattr(inflatable_utils.threading, "Event", _RecordingEvent)
    monkeypatch.setattr(inflatable_utils.random, "uniform", lambda a, b: 0.0)  # no jitter
    got = inflatable_utils.pull_objects(["obj"], pull)
    assert got == {"obj": b"content"} and len(calls) == unavailable + 1
    return _RecordingEvent.waits


@pytest.fixture
def flower_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's own first wait during the test, whatever ran before in this process (a
    simulation's ServerApp makes the change process-wide); restored after."""
    from flwr.supercore.constant import PULL_BACKOFF_CAP, PULL_INITIAL_BACKOFF, PULL_MAX_TIME

    for fn in (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree):
        monkeypatch.setitem(fn.__kwdefaults__, "initial_backoff", PULL_INITIAL_BACKOFF)
        monkeypatch.setitem(fn.__kwdefaults__, "backoff_cap", PULL_BACKOFF_CAP)
        monkeypatch.setitem(fn.__kwdefaults__, "max_time", PULL_MAX_TIME)


def test_first_retry_is_sooner_and_the_backoff_doubles_to_one_second(
    monkeypatch: pytest.MonkeyPatch, flower_defaults: None
) -> None:
    # Prepare: Flower's own schedule first
    flower = _waits_for(monkeypatch, unavailable=6)
    # Execute
    assert quicker_object_pulls() is True
    ours = _waits_for(monkeypatch, unavailable=10)
    # Assert: 1, 2, 4, 8, 10, 10 s before; now 0.05 s doubling, capped at 1 s
    assert flower == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert ours == [FIRST_RETRY_S, 0.1, 0.2, 0.4, 0.8, *[LONGEST_RETRY_S] * 5]
    tree_defaults = inflatable_utils.pull_and_inflate_object_from_tree.__kwdefaults__
    assert (tree_defaults["initial_backoff"], tree_defaults["backoff_cap"]) == (0.05, 1.0)


class _Clock:
    """`time` as inflatable_utils sees it: each recorded retry wait advances it."""

    now = 0.0

    @staticmethod
    def monotonic() -> float:
        return _Clock.now


class _AdvancingEvent(_RecordingEvent):
    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            _Clock.now += timeout
        return super().wait(timeout)


def test_a_reply_whose_arrays_never_arrive_is_given_up_after_the_given_time(
    monkeypatch: pytest.MonkeyPatch, flower_defaults: None
) -> None:
    # Prepare: an upload cut off by a crash; Flower would ask for 2 hours (or 500 tries)
    def never(object_id: str) -> bytes:
        raise ObjectUnavailableError(object_id)

    _Clock.now, _RecordingEvent.waits = 0.0, []
    monkeypatch.setattr(inflatable_utils, "time", _Clock)
    monkeypatch.setattr(inflatable_utils.threading, "Event", _AdvancingEvent)
    monkeypatch.setattr(inflatable_utils.random, "uniform", lambda a, b: 0.0)
    assert quicker_object_pulls(give_up_after_s=30.0) is True
    # Execute / Assert: the pull fails once 30 s of waiting have passed
    with pytest.raises(inflatable_utils.ObjectPullError):
        inflatable_utils.pull_objects(["obj"], never)
    assert 30.0 <= _Clock.now <= 31.0
    assert len(_RecordingEvent.waits) == 5 + 29  # 0.05 ... 0.8, then 1 s apart
