"""The round loop: Flower's legacy fit/evaluate workflows from a start round, each bounded."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from flwr.app import Context, Message
from flwr.common import ConfigRecord
from flwr.compat.server.typing import Workflow
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.app_utils import start_update_client_manager_thread
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.criterion import Criterion
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, Key
from flwr.server.workflow.default_workflows import (
    default_evaluate_workflow,
    default_fit_workflow,
    default_init_params_workflow,
)
from flwr.serverapp.grid import Grid

from server.recording import RecordingStrategy
from shared.errors import RoundError

__all__ = ["BoundedClientManager", "MedFleetWorkflow"]

logger = logging.getLogger("medfleet.server")

#: How often the round loop asks the SuperLink for the sites' replies (seconds).
POLL_SECONDS = 0.25
#: The same under the simulation engine, whose grid reads the replies from memory.
IN_MEMORY_POLL_SECONDS = 0.01


def poll_seconds(grid: Grid) -> float:
    """The reply polling interval for `grid`: short where a pull is a lookup in memory."""
    try:
        from flwr.superlink.grid.inmemory_grid import InMemoryGrid
    except ImportError:  # another Flower layout: keep the interval that suits any grid
        return POLL_SECONDS
    return IN_MEMORY_POLL_SECONDS if isinstance(grid, InMemoryGrid) else POLL_SECONDS


class BoundedClientManager(SimpleClientManager):
    """Flower's client manager, but waiting for sites at most `timeout` seconds, not a day.

    When fewer than the requested sites are connected by then, sampling raises
    RoundError with the counts instead of returning an empty round.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def sample(
        self,
        num_clients: int,
        min_num_clients: int | None = None,
        criterion: Criterion | None = None,
    ) -> list[ClientProxy]:
        wanted = num_clients if min_num_clients is None else min_num_clients
        if not self.wait_for(wanted, timeout=int(self.timeout)):
            raise RoundError(
                f"only {self.num_available()} sites are connected, the run needs "
                f"min-sites={wanted}; waited round-timeout={self.timeout:g} s: start the "
                "missing site daemons (or lower 'min-sites') and resume the run"
            )
        return super().sample(num_clients, min_num_clients, criterion)


class _BoundedGrid:
    """A Grid whose every exchange with the sites waits at most `seconds` for the replies.

    Each exchange (a SecAgg+ stage, the evaluation request) has its own bound instead of
    sharing one deadline per round: a site that dies costs the stage it died in one
    timeout, and the sites still answering get the full time for the stages left. (With
    a shared deadline they had about a second left, so the round failed with every
    other site there.)

    It also asks for the replies every `poll` seconds: Flower's gRPC/HTTP grid sleeps 3 s
    between pulls, which with SecAgg+'s four exchanges per round added up to 12 s of
    waiting on replies that had already arrived. A pull from the SuperLink is one local
    request, so asking more often costs the server nothing worth measuring.
    """

    def __init__(
        self,
        grid: Grid,
        seconds: float,
        poll: float = POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._grid = grid
        self._seconds = seconds
        self._poll = poll
        self._clock = clock
        self._sleep = sleep
        #: Reasons of the error replies since the last `clear` (sites send scrubbed text).
        self.errors: list[str] = []

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        bound = self._seconds if timeout is None else min(timeout, self._seconds)
        pending = set(self._grid.push_messages(messages))
        deadline = self._clock() + bound
        replies: list[Message] = []
        while pending:
            pulled = list(self._grid.pull_messages(pending))
            replies.extend(pulled)
            pending.difference_update(m.metadata.reply_to_message_id for m in pulled)
            left = deadline - self._clock()
            if not pending or left <= 0:
                break
            self._sleep(min(self._poll, left))
        for reply in replies:
            if reply.has_error():
                reason = str(reply.error.reason)
                self.errors.append(reason)
                logger.warning("a site replied with an error: %s", reason)
        return replies

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


class MedFleetWorkflow:
    """Rounds `start_round`..`num_rounds` of Flower's fit and evaluate workflows.

    Flower's DefaultWorkflow always starts at round 1 and lets each exchange wait without
    limit; this loop starts where a resumed run left off (so FedAdam's bias correction
    sees the true round number) and waits at most `round_timeout` seconds for the
    replies of each exchange with the sites. A round thus ends within 5 x round-timeout
    with SecAgg+ (four fit stages and the evaluation), 2 x without; a site that does not
    answer is left out of the round's later exchanges. A round whose fit stage
    aggregated nothing (e.g. SecAgg+ halted because fewer sites than its threshold
    replied) raises RoundError: the run stops, its checkpoints intact. After the last
    round, `final` (cross-site evaluation) runs with the same bounded exchanges.
    """

    def __init__(
        self,
        fit_workflow: Workflow | None,
        start_round: int,
        round_timeout: float,
        final: Workflow | None = None,
    ) -> None:
        self.fit_workflow = fit_workflow or default_fit_workflow
        self.start_round = start_round
        self.round_timeout = round_timeout
        self.final = final

    def __call__(self, grid: Grid, context: Context) -> None:
        if not isinstance(context, LegacyContext):
            raise TypeError(f"expected a LegacyContext, got {type(context).__name__}")
        strategy = cast(RecordingStrategy, context.strategy)
        thread, stop, ready = start_update_client_manager_thread(grid, context.client_manager)
        ready.wait()
        exchanges = _BoundedGrid(grid, self.round_timeout, poll_seconds(grid))
        bounded = cast(Grid, exchanges)
        try:
            default_init_params_workflow(grid, context)
            cfg = ConfigRecord({Key.START_TIME: time.monotonic()})
            context.state.config_records[MAIN_CONFIGS_RECORD] = cfg
            for server_round in range(self.start_round, context.config.num_rounds + 1):
                cfg[Key.CURRENT_ROUND] = server_round
                exchanges.errors.clear()
                self.fit_workflow(bounded, context)
                if strategy.last_aggregated_round != server_round:
                    raise RoundError(
                        f"round {server_round} aggregated no update: too few sites replied "
                        f"within round-timeout={self.round_timeout:g} s (the run needs "
                        f"min-sites={strategy.run.min_sites}; SecAgg+ also needs "
                        "secagg-threshold share holders of each site); the checkpoints of the "
                        "rounds before are intact: bring the sites back and resume the run"
                        + _site_errors(exchanges.errors)
                    )
                default_evaluate_workflow(bounded, context)
            if self.final is not None:
                cfg[Key.CURRENT_ROUND] = context.config.num_rounds
                exchanges.errors.clear()
                self.final(bounded, context)
        finally:
            stop.set()
            thread.join(timeout=10)


def _site_errors(errors: list[str], most: int = 5) -> str:
    """The distinct error replies of a failed round, for its error message."""
    distinct = list(dict.fromkeys(errors))
    if not distinct:
        return ""
    more = f" (+{len(distinct) - most} more)" if len(distinct) > most else ""
    return "; sites replied with errors: " + " | ".join(distinct[:most]) + more
