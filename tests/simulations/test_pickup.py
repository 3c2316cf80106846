"""The simulation engine's message pickup: waits bounded, Flower's feeder wrapped once."""

from __future__ import annotations

import threading
import time

from simulations.pickup import ShortWaits, quicker_pickup


def test_short_waits_return_after_the_interval_and_see_the_event() -> None:
    # Prepare
    event = threading.Event()
    waits = ShortWaits(event, 0.01)
    # Execute
    started = time.monotonic()
    fired = waits.wait(0.1)  # Flower's feeder asks for 0.1 s
    took = time.monotonic() - started
    event.set()
    # Assert
    assert fired is False and took < 0.08
    assert waits.is_set() is True and waits.wait(0.1) is True


def test_the_feeder_is_wrapped_once_and_still_feeds_until_stopped() -> None:
    # Prepare
    from flwr.server.superlink.fleet.vce import vce_api

    assert quicker_pickup() is True and quicker_pickup() is True
    feeder = vce_api.add_messages_to_queue
    assert getattr(feeder, "medfleet_quicker", False)
    assert not getattr(feeder.__wrapped__, "medfleet_quicker", False)  # type: ignore[attr-defined]

    class _State:
        def __init__(self) -> None:
            self.calls = 0

        def get_message_ins(self, node_id: int, limit: int) -> list[str]:
            self.calls += 1
            return [f"msg-{node_id}"] if self.calls == 1 else []

    state, queue, stop = _State(), __import__("queue").Queue(), threading.Event()
    thread = threading.Thread(target=feeder, args=(state, queue, {7: 0}, stop))
    # Execute: in 0.3 s Flower's own 0.1 s wait would look about 3 times
    thread.start()
    time.sleep(0.3)
    stop.set()
    thread.join(timeout=2)
    # Assert
    assert queue.get_nowait() == "msg-7"
    assert state.calls >= 10
