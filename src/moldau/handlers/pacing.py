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


async def paced(items: Iterable[T], every: int = PACE) -> AsyncIterator[T]:
    """``items``, yielding to the event loop after every ``every`` of them."""
    count = 0
    for item in items:
        yield item
        count += 1
        if count == every:
            count = 0
            await asyncio.sleep(0)


async def paced_map(fn: Callable[[T], R], items: Iterable[T], every: int = PACE) -> list[R]:
    """``[fn(x) for x in items]``, yielding to the event loop after every ``every`` items."""
    out: list[R] = []
    async for item in paced(items, every):
        out.append(fn(item))
    return out
