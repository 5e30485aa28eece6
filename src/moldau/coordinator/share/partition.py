"""The state of one share-partition: which records of a topic-partition a share group
has delivered, to whom, and what became of them (KIP-932's SharePartition). Sans-IO.

Theory of operation: offsets below the **share-partition start offset** (SPSO) are
done (acknowledged or archived); offsets from the **share-partition end offset**
(SPEO) on have never been delivered. Between them lie the **in-flight** records,
kept as a sorted list of contiguous :class:`Span` ranges -- never one object per
record -- each with a state (AVAILABLE, ACQUIRED, ACKNOWLEDGED, ARCHIVED), a delivery
count and, while ACQUIRED, its holder and lock deadline. The spans tile
``[SPSO, SPEO)`` exactly. A fresh acquisition takes whole log batches from SPEO
(one span per fetch, however many records); an acknowledgement of part of a span
splits it; neighbours that end up ACKNOWLEDGED or ARCHIVED merge again, and the SPSO
moves past every finished span at the front.

State changes, as Kafka's SharePartition makes them:

* acquire: AVAILABLE -> ACQUIRED, delivery count + 1, lock until now + lock duration;
* ACCEPT -> ACKNOWLEDGED; REJECT (and GAP) -> ARCHIVED; RELEASE, a lock that expires,
  or its holder leaving -> AVAILABLE, or ARCHIVED once the delivery count has reached
  ``group.share.delivery.count.limit`` (a poison record stops being redelivered);
* an acknowledgement must name records ACQUIRED by the member that sends it, or the
  partition answers INVALID_RECORD_STATE and nothing changes.

At most ``group.share.partition.max.record.locks`` records are in flight
(SPEO - SPSO); past that, fresh records wait until the front is acknowledged.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from moldau.protocol.errors import ErrorCode, KafkaError

AVAILABLE = 0
ACQUIRED = 1
ACKNOWLEDGED = 2
ARCHIVED = 4
STATE_NAMES = {AVAILABLE: "AVAILABLE", ACQUIRED: "ACQUIRED", ACKNOWLEDGED: "ACKNOWLEDGED", ARCHIVED: "ARCHIVED"}

# acknowledge types on the wire
GAP = 0
ACCEPT = 1
RELEASE = 2
REJECT = 3


class Span:
    """Offsets ``first..last`` (inclusive) sharing one state."""

    __slots__ = ("first", "last", "state", "count", "member", "deadline")

    def __init__(
        self, first: int, last: int, state: int, count: int, member: str | None = None, deadline: float = 0.0
    ) -> None:
        self.first, self.last, self.state, self.count = first, last, state, count
        self.member, self.deadline = member, deadline

    def __repr__(self) -> str:
        return f"Span({self.first}-{self.last} {STATE_NAMES[self.state]} x{self.count} {self.member or ''})"

    def split(self, at: int) -> Span:
        """Cut at ``at`` (first < at <= last): this keeps ``first..at-1``; return the rest."""
        rest = Span(at, self.last, self.state, self.count, self.member, self.deadline)
        self.last = at - 1
        return rest


@dataclass
class Acquired:
    first: int
    last: int
    count: int


class SharePartition:
    """One (group, topic, partition)'s delivery state (see the module docstring)."""

    def __init__(self, start_offset: int, *, delivery_limit: int = 5, max_locks: int = 2000) -> None:
        self.start_offset = start_offset
        self.end_offset = start_offset
        self.spans: list[Span] = []
        self.delivery_limit = delivery_limit
        self.max_locks = max_locks
        #: bumped at every change, so the persister writes only what changed
        self.version = 0
        #: bumped by AlterShareGroupOffsets / a reset (Kafka's state epoch)
        self.state_epoch = 0

    # -- queries ------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self.end_offset - self.start_offset

    def next_deadline(self) -> float | None:
        deadlines = [s.deadline for s in self.spans if s.state == ACQUIRED]
        return min(deadlines) if deadlines else None

    def first_available(self) -> int | None:
        """The lowest offset a fetch could deliver now, or None if only fresh ones."""
        for s in self.spans:
            if s.state == AVAILABLE:
                return s.first
        return None

    def has_available(self, high_watermark: int) -> bool:
        return self.first_available() is not None or (
            self.end_offset < high_watermark and self.in_flight < self.max_locks
        )

    # -- acquisition --------------------------------------------------------------------

    def acquire(
        self,
        member: str,
        batches: list[tuple[int, int]],
        max_records: int,
        lock_until: float,
    ) -> list[Acquired]:
        """Acquire for ``member`` what ``batches`` (``(base, last)`` offsets of the whole
        log batches a read returned, in order) cover: redeliverable spans first, then
        fresh batches from SPEO. Stops once ``max_records`` are taken (whole batches, as
        Kafka aligns to them). Returns the acquired ranges with their delivery counts."""
        if not batches:
            return []
        read_first, read_last = batches[0][0], batches[-1][1]
        taken: list[Acquired] = []
        total = 0
        i = self._index_of(read_first)
        while i < len(self.spans) and total < max_records:
            s = self.spans[i]
            if s.first > read_last:
                break
            if s.state == AVAILABLE:
                if s.last > read_last:
                    self.spans.insert(i + 1, s.split(read_last + 1))
                if s.first < read_first:
                    s = s.split(read_first)
                    i += 1
                    self.spans.insert(i, s)
                s.state, s.count, s.member, s.deadline = ACQUIRED, s.count + 1, member, lock_until
                total += s.last - s.first + 1
                if taken and taken[-1].last + 1 == s.first and taken[-1].count == s.count:
                    taken[-1].last = s.last
                else:
                    taken.append(Acquired(s.first, s.last, s.count))
            i += 1
        fresh_first = self.end_offset
        fresh_last = -1
        for _base, last in batches:
            if last < self.end_offset:
                continue
            if total >= max_records or (fresh_last >= 0 and last - self.start_offset >= self.max_locks):
                break
            if fresh_last < 0 and self.in_flight >= self.max_locks:
                break
            fresh_last = last
            total = total + last - max(fresh_first, _base) + 1
        if fresh_last >= fresh_first:
            self.spans.append(Span(fresh_first, fresh_last, ACQUIRED, 1, member, lock_until))
            self.end_offset = fresh_last + 1
            if taken and taken[-1].last + 1 == fresh_first and taken[-1].count == 1:
                taken[-1].last = fresh_last
            else:
                taken.append(Acquired(fresh_first, fresh_last, 1))
        if taken:
            self.version += 1
        return taken

    # -- acknowledgement ----------------------------------------------------------------

    def acknowledge(self, member: str, first: int, last: int, ack_type: int) -> None:
        """Apply one acknowledgement of ``first..last``; raise INVALID_RECORD_STATE
        (changing nothing) unless every offset is ACQUIRED by ``member``."""
        if last < first or first < self.start_offset or last >= self.end_offset:
            raise KafkaError(ErrorCode.INVALID_RECORD_STATE, "offsets not in flight")
        i = self._index_of(first)
        j = i
        while j < len(self.spans) and self.spans[j].first <= last:
            s = self.spans[j]
            if s.state != ACQUIRED or s.member != member:
                raise KafkaError(ErrorCode.INVALID_RECORD_STATE, f"offsets {s.first}-{s.last} not acquired by the member")
            j += 1
        if self.spans[i].first < first:
            self.spans.insert(i + 1, self.spans[i].split(first))
            i += 1
            j += 1
        if self.spans[j - 1].last > last:
            self.spans.insert(j, self.spans[j - 1].split(last + 1))
        for s in self.spans[i:j]:
            self._settle(s, ack_type)
        self.version += 1
        self._compact(i, j)

    def _settle(self, s: Span, ack_type: int) -> None:
        if ack_type == ACCEPT:
            s.state = ACKNOWLEDGED
        elif ack_type == RELEASE:
            s.state = ARCHIVED if s.count >= self.delivery_limit else AVAILABLE
        elif ack_type in (REJECT, GAP):
            s.state = ARCHIVED
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"unknown acknowledge type {ack_type}")
        s.member, s.deadline = None, 0.0

    def release_expired(self, now: float) -> bool:
        """Locks past their deadline go back (AVAILABLE or ARCHIVED); True if any did."""
        changed = False
        for s in self.spans:
            if s.state == ACQUIRED and s.deadline <= now:
                self._settle(s, RELEASE)
                changed = True
        if changed:
            self.version += 1
            self._compact(0, len(self.spans))
        return changed

    def release_member(self, member: str) -> bool:
        """Everything ``member`` holds goes back (it left the group or closed its session)."""
        changed = False
        for s in self.spans:
            if s.state == ACQUIRED and s.member == member:
                self._settle(s, RELEASE)
                changed = True
        if changed:
            self.version += 1
            self._compact(0, len(self.spans))
        return changed

    # -- housekeeping -------------------------------------------------------------------

    def _index_of(self, offset: int) -> int:
        """Index of the span holding ``offset`` (or the first one after it)."""
        i = bisect.bisect_right(self.spans, offset, key=lambda s: s.first) - 1
        return max(i, 0)

    def _compact(self, i: int, j: int) -> None:
        """Merge finished neighbours around ``[i, j)`` and move the SPSO past the front."""
        spans = self.spans
        lo = max(i - 1, 0)
        hi = min(j + 1, len(spans))
        merged: list[Span] = []
        for s in spans[lo:hi]:
            prev = merged[-1] if merged else None
            if (
                prev is not None and prev.state == s.state and s.state in (ACKNOWLEDGED, ARCHIVED)
                and prev.last + 1 == s.first
            ) or (
                prev is not None and prev.state == s.state == AVAILABLE and prev.count == s.count
                and prev.last + 1 == s.first
            ):
                prev.last = s.last
            else:
                merged.append(s)
        spans[lo:hi] = merged
        k = 0
        while k < len(spans) and spans[k].state in (ACKNOWLEDGED, ARCHIVED):
            k += 1
        if k:
            self.start_offset = spans[k - 1].last + 1
            del spans[:k]

    def reset(self, start_offset: int) -> None:
        """Forget everything and start at ``start_offset`` (AlterShareGroupOffsets)."""
        self.start_offset = self.end_offset = start_offset
        self.spans.clear()
        self.state_epoch += 1
        self.version += 1

    def advance_to(self, log_start_offset: int) -> None:
        """Records deleted by retention are gone: move the SPSO up to the log start."""
        if log_start_offset <= self.start_offset:
            return
        while self.spans and self.spans[0].last < log_start_offset:
            self.spans.pop(0)
        if self.spans and self.spans[0].first < log_start_offset:
            self.spans[0].first = log_start_offset
        self.start_offset = log_start_offset
        self.end_offset = max(self.end_offset, log_start_offset)
        self.version += 1

    # -- persistence --------------------------------------------------------------------

    def state_batches(self) -> list[tuple[int, int, int, int]]:
        """``(first, last, delivery state, delivery count)`` of what must survive a
        restart (Kafka's PersisterStateBatch): every in-flight span, acquisitions
        written as AVAILABLE (locks do not outlive the broker) with their count."""
        out = []
        for s in self.spans:
            state = AVAILABLE if s.state == ACQUIRED else s.state
            out.append((s.first, s.last, state, s.count))
        return out

    @classmethod
    def restore(
        cls,
        start_offset: int,
        batches: Iterable[tuple[int, int, int, int]],
        *,
        state_epoch: int = 0,
        delivery_limit: int = 5,
        max_locks: int = 2000,
    ) -> SharePartition:
        """Rebuild from persisted state: gaps between batches are AVAILABLE, never delivered."""
        sp = cls(start_offset, delivery_limit=delivery_limit, max_locks=max_locks)
        sp.state_epoch = state_epoch
        cursor = start_offset
        for first, last, state, count in sorted(batches):
            if last < cursor:
                continue
            first = max(first, cursor)
            if first > cursor:
                sp.spans.append(Span(cursor, first - 1, AVAILABLE, 0))
            sp.spans.append(Span(first, last, AVAILABLE if state == ACQUIRED else state, count))
            cursor = last + 1
        sp.end_offset = cursor
        sp._compact(0, len(sp.spans))
        return sp
