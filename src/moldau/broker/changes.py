"""State changes that run to completion, whoever is waiting for them.

Theory of operation: a handler runs in a task that its connection cancels when the
client hangs up (librdkafka drops its bootstrap connection while an auto-creating
Metadata request is in flight). A change that spans an ``await`` -- write the metadata
store, then apply the result to the broker -- must never be cut between the two, or
the store and the broker disagree until a restart. So every such change is handed to
:class:`StateChanges`, which runs it as a task the broker owns: the requester awaits
it through :func:`asyncio.shield`, and if the requester is cancelled the change still
completes (the cancelled request simply gets no answer). Changes run one at a time,
in the order they were submitted, like the event queue of Kafka's controller, so each
sees the state the previous one left. The broker drains pending changes before it
closes the store at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class StateChanges:
    """Runs state-changing steps as broker-owned tasks, serialised, immune to cancellation."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[object]] = set()

    async def run(self, step: Callable[[], Awaitable[T]], *, exclusive: bool = True) -> T:
        """Run ``step()`` to completion and return its result (or raise its error).

        ``exclusive`` steps (metadata changes) run one at a time; others (a checkpoint
        write) only need to finish. Cancelling the caller never cancels the step. A step
        must not submit another exclusive step and wait for it: that would wait forever.
        """
        task: asyncio.Task[T] = asyncio.ensure_future(self._guarded(step, exclusive))
        self._pending.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._pending.discard)  # type: ignore[arg-type]
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(_log_orphan_failure)
            raise

    async def _guarded(self, step: Callable[[], Awaitable[T]], exclusive: bool) -> T:
        if not exclusive:
            return await step()
        async with self._lock:
            return await step()

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for every submitted change (at shutdown, before the store closes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("%d state change(s) still running at shutdown", len(self._pending))
                return
            await asyncio.wait(list(self._pending), timeout=remaining)


def _log_orphan_failure(task: asyncio.Task[object]) -> None:
    """Nobody is left to answer: a failed change of a vanished requester is logged here."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.warning("a state change whose requester hung up failed: %r", exc)
