"""Pacing for handlers that walk large arrays: hand the event loop back now and then.

A request may legitimately carry a million entries (``socket.request.max.bytes`` is
100 MiB): a Metadata request naming topics, ListOffsets or OffsetFetch naming
partitions, DescribeGroups naming groups. Kafka serves such a request on one of its
request handler threads and every other client goes on being served by the others.
Moldau has one event loop for all connections, so a handler that walks a large array
awaits ``asyncio.sleep(0)`` every :data:`PACE` entries: other connections are served in
between, and the big request simply takes a little longer. :data:`PACE` entries cost a
few milliseconds at most, which bounds how long any other client waits for the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Entries handled between two returns to the event loop.
PACE = 1000


class Pacer:
    """Counts entries handled; nested loops share one so that every entry counts, e.g.
    a million topics of one partition each as well as one topic of a million."""

    __slots__ = ("count", "every")

    def __init__(self, every: int = PACE) -> None:
        self.every = every
        self.count = 0

    async def tick(self, entries: int = 1) -> None:
        """Count ``entries``; hand the loop back if ``every`` were counted since last time."""
        self.count += entries
        if self.count >= self.every:
            self.count = 0
            await asyncio.sleep(0)


async def paced(items: Iterable[T], pacer: Pacer | None = None) -> AsyncIterator[T]:
    """``items``, handing the loop back every :data:`PACE` entries (or ``pacer``'s)."""
    pacer = pacer or Pacer()
    for item in items:
        yield item
        pacer.count += 1
        if pacer.count >= pacer.every:
            pacer.count = 0
            await asyncio.sleep(0)


async def paced_map(fn: Callable[[T], R], items: Iterable[T], pacer: Pacer | None = None) -> list[R]:
    """``[fn(x) for x in items]``, handing the loop back as :func:`paced` does."""
    return [fn(item) async for item in paced(items, pacer)]
