"""The broker-wide budget of request bytes held in memory (``queued.max.request.bytes``).

Theory of operation, after Kafka's ``SimpleMemoryPool`` (non-strict, as its network
layer uses it): every byte a connection holds for a request -- a frame being received
or a frame waiting for its handler -- is reserved here, and released when the handler
is done with the frame or the connection closes. A reservation succeeds while any
memory is left, even if it overshoots; so one request larger than the whole budget
can still be served (nothing can wedge the broker), and the overshoot is bounded by
``socket.request.max.bytes``. When the pool is out of memory, connections that need
more stop reading (Kafka mutes them) and register a callback here; they are all
called back, in order, as soon as a release leaves memory available, and retry.

Bytes are reserved as they arrive (below), so unlike Kafka's pool, which reserves a
whole frame at once, a frame could wait for memory that only frames waiting like it
hold: a request larger than the budget would wedge. So one frame at a time may take
the *lane*: it keeps growing past the budget until it is complete (the same overshoot,
at most one request, as Kafka's non-strict pool allows). And a connection that holds
nothing (its requests answered) keeps reading while the pool is out of memory: it adds
at most one read to the total, and it cannot wait on memory that it does not hold
(Kafka mutes it, and then a client stalled half-way through a frame that holds the
budget would stall every other client too).

Bytes are reserved as they are allocated, not as frames announce them: a frame's
buffer grows with the data that arrives (see ``connection.py``), so a client that
announces 100 MiB and sends 2 KB holds a few KB of the budget, not 100 MiB.
"""

from __future__ import annotations

import collections
from collections.abc import Callable


class MemoryPool:
    """Counts reserved bytes against a capacity; ``capacity <= 0`` means unbounded."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.bounded = capacity > 0
        self.available = capacity if self.bounded else 0
        self.reserved = 0
        self.peak_reserved = 0
        self.lane: int | None = None  # the one frame allowed to grow while out of memory
        self._waiters: collections.OrderedDict[int, Callable[[], None]] = collections.OrderedDict()

    @property
    def out_of_memory(self) -> bool:
        return self.bounded and self.available <= 0

    def reserve(self, size: int) -> None:
        """Count bytes already held (they arrived before we could refuse them)."""
        self.reserved += size
        if self.reserved > self.peak_reserved:
            self.peak_reserved = self.reserved
        if self.bounded:
            self.available -= size

    def try_reserve(self, size: int) -> bool:
        """Reserve ``size`` bytes if any memory is available (Kafka's non-strict pool)."""
        if self.out_of_memory:
            return False
        self.reserve(size)
        return True

    def reserve_in_lane(self, key: int, size: int) -> bool:
        """Reserve ``size`` for frame ``key`` even if out of memory, if the lane is free
        or already its own; it keeps the lane until :meth:`leave_lane`."""
        if self.lane is not None and self.lane != key:
            return False
        self.lane = key
        self.reserve(size)
        return True

    def leave_lane(self, key: int) -> None:
        if self.lane == key:
            self.lane = None
            self._wake()  # a frame waiting to grow may take it

    def release(self, size: int) -> None:
        if size <= 0:
            return
        self.reserved -= size
        if not self.bounded:
            return
        self.available += size
        if self.available > 0:
            self._wake()

    def _wake(self) -> None:
        if self._waiters:
            waiters = list(self._waiters.values())
            self._waiters.clear()
            for wake in waiters:
                wake()  # a waiter that still cannot proceed registers again

    def wait(self, key: int, wake: Callable[[], None]) -> None:
        """Call ``wake`` once memory is available again (``key`` dedupes a waiter)."""
        self._waiters[key] = wake

    def forget(self, key: int) -> None:
        self._waiters.pop(key, None)

    @property
    def waiting(self) -> int:
        return len(self._waiters)
