"""Share-partition leader: the share-partitions of the topic-partitions this broker
leads, the share sessions of the members that fetch from it, and acquisition.

Theory of operation: ShareFetch and ShareAcknowledge go to a partition's leader (as
Fetch does), so this broker keeps the :class:`~.partition.SharePartition` of every
(group, topic, partition) it leads and a member fetches. A share-partition is created
on first fetch: from the persisted state if there is one (:mod:`.state`), else at
``share.auto.offset.reset`` (``latest``: the high watermark; ``earliest``: the log
start). A fetch reads whole batches from the log (:meth:`Partition.read`), walks
their headers only (:func:`batch_bounds`, no record is decoded), acquires what they
hold and returns the same file slice, cut after the last acquired batch: the records
travel zero-copy and the client keeps the ones in its acquired ranges.

Locks expire by a timer per share-partition, set at its next deadline; a released or
expired record wakes the share fetches waiting on that partition. A member that
leaves its group (or closes its share session) has what it holds released at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from moldau.config.group import group_config_value
from moldau.coordinator.share.partition import Acquired, SharePartition
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.replication.partition import wake

log = logging.getLogger("moldau.coordinator.share")

ShareKey = tuple[str, str, int]  # group, topic, partition

_HEAD = struct.Struct(">qi")  # base offset, batch length
_LAST_DELTA = struct.Struct(">i")  # at byte 23 of a batch
_TXN_FIELDS = struct.Struct(">h20xq")  # attributes (byte 21) .. producer id (byte 43)
BATCH_OVERHEAD = 12
HEADER_BYTES = 27
TXN_HEADER_BYTES = 51
_TRANSACTIONAL, _CONTROL = 0x10, 0x20
REJECT = 3


def batch_bounds(file_slice: Any, enough: int) -> list[tuple[int, int, int]]:
    """``(base offset, last offset, end position in the slice)`` of the whole batches at
    the front of a file slice, read from their headers alone (27 bytes per batch, no
    record decoded), stopping at the first batch whose last offset reaches ``enough``:
    a read may hold far more (up to the client's fetch.max.bytes) than one acquisition
    takes."""
    fd = file_slice.file.fileno()
    pos, end = file_slice.position, file_slice.position + file_slice.size
    out = []
    while pos + HEADER_BYTES <= end:
        head = os.pread(fd, HEADER_BYTES, pos)
        if len(head) < HEADER_BYTES:
            break
        base, length = _HEAD.unpack_from(head, 0)
        batch_end = pos + BATCH_OVERHEAD + length
        if batch_end > end:
            break
        (delta,) = _LAST_DELTA.unpack_from(head, 23)
        out.append((base, base + delta, batch_end - file_slice.position))
        if base + delta >= enough:
            break
        pos = batch_end
    return out


def aborted_batches(file_slice: Any, bounds: list[tuple[int, int, int]], aborted: Any) -> list[tuple[int, int]]:
    """``(base, last)`` of the batches among ``bounds`` (from :func:`batch_bounds`) that
    belong to an aborted transaction of ``aborted`` (the read's AbortedTxn list): a
    transactional data batch of an aborted producer between its transaction's first
    offset and its abort marker, as a read_committed consumer drops them."""
    fd = file_slice.file.fileno()
    out = []
    start = 0
    for base, last, end in bounds:
        head = os.pread(fd, TXN_HEADER_BYTES, file_slice.position + start)
        start = end
        if len(head) < TXN_HEADER_BYTES:
            break
        attributes, producer_id = _TXN_FIELDS.unpack_from(head, 21)
        if attributes & _TRANSACTIONAL and not attributes & _CONTROL and any(
            a.producer_id == producer_id and a.first_offset <= base <= a.last_offset for a in aborted
        ):
            out.append((base, last))
    return out


def _without(acquired: list[Acquired], ranges: list[tuple[int, int]]) -> list[Acquired]:
    """``acquired`` less the offsets of ``ranges``."""
    out = []
    for a in acquired:
        pieces = [(a.first, a.last)]
        for first, last in ranges:
            pieces = [p for f, la in pieces for p in ((f, min(la, first - 1)), (max(f, last + 1), la)) if p[0] <= p[1]]
        out.extend(Acquired(f, la, a.count) for f, la in pieces)
    return out


_DURATION = re.compile(r"^p(?:(\d+)d)?(?:t(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?)?$")


def iso_duration_seconds(text: str) -> float | None:
    """``PnDTnHnMnS`` (Java's Duration.parse, days and below) in seconds, or None."""
    m = _DURATION.match(text.strip().lower())
    if m is None or not any(m.groups()):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


@dataclass
class ShareSession:
    """A member's share session with this broker (KIP-932's ShareSession)."""

    group_id: str
    member_id: str
    epoch: int = 1
    partitions: set[tuple[str, int]] = field(default_factory=set)


@dataclass
class FetchResult:
    records: Any  # a file slice cut to what was acquired, or None
    size: int
    acquired: list[Acquired]


class ShareManager:
    """Every share-partition and share session of this broker."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.partitions: dict[ShareKey, SharePartition] = {}
        self.sessions: dict[tuple[str, str], ShareSession] = {}
        self._timers: dict[ShareKey, asyncio.TimerHandle] = {}
        self._waiters: dict[ShareKey, set[asyncio.Future[None]]] = {}
        #: called after a share-partition changed (the persister listens)
        self.change_listeners: list[Any] = []
        #: persisted state to start from: set by the persister, (start, epoch, batches)
        self.load_state: Any = None

    # -- configuration ------------------------------------------------------------------

    def group_config(self, group_id: str, key: str) -> Any:
        """A group config (``share.*``): the group's override, else the broker's default."""
        overrides = getattr(self.broker, "group_configs", {}).get(group_id, {})
        return group_config_value(self.broker.config, overrides, key)

    def lock_duration_ms(self, group_id: str) -> int:
        return int(self.group_config(group_id, "share.record.lock.duration.ms"))

    # -- sessions -----------------------------------------------------------------------

    def open_session(self, group_id: str, member_id: str, epoch: int) -> ShareSession | None:
        """Check a request's ShareSessionEpoch: 0 opens a session (replacing any), -1 is
        the final request of one, otherwise it must be the next epoch."""
        key = (group_id, member_id)
        if epoch == 0:
            old = self.sessions.pop(key, None)
            if old is not None:
                self.release_member(group_id, member_id, old.partitions)
            session = self.sessions[key] = ShareSession(group_id, member_id)
            return session
        session = self.sessions.get(key)
        if session is None:
            raise KafkaError(ErrorCode.SHARE_SESSION_NOT_FOUND)
        if epoch == -1:
            return session
        if epoch != session.epoch:
            raise KafkaError(ErrorCode.INVALID_SHARE_SESSION_EPOCH)
        session.epoch = epoch + 1 if epoch < 0x7FFFFFFF else 1
        return session

    def close_session(self, group_id: str, member_id: str) -> None:
        session = self.sessions.pop((group_id, member_id), None)
        if session is not None:
            self.release_member(group_id, member_id, session.partitions)

    def member_gone(self, group_id: str, member_id: str) -> None:
        """The group coordinator removed a member: its sessions and locks go."""
        self.close_session(group_id, member_id)
        self.release_member(group_id, member_id, None)

    def release_member(self, group_id: str, member_id: str, only: set[tuple[str, int]] | None) -> None:
        for key, sp in self.partitions.items():
            if key[0] != group_id or (only is not None and (key[1], key[2]) not in only):
                continue
            if sp.release_member(member_id):
                self._changed(key, sp)

    # -- share-partitions ---------------------------------------------------------------

    def share_partition(self, group_id: str, topic: str, index: int, partition: Any) -> SharePartition:
        key = (group_id, topic, index)
        sp = self.partitions.get(key)
        if sp is None:
            limit = int(self.group_config(group_id, "share.delivery.count.limit"))
            locks = int(self.group_config(group_id, "share.partition.max.record.locks"))
            stored = self.load_state(key) if self.load_state is not None else None
            if stored is not None:
                start, state_epoch, batches = stored
                sp = SharePartition.restore(
                    start, batches, state_epoch=state_epoch, delivery_limit=limit, max_locks=locks
                )
            else:
                start = self._reset_offset(str(self.group_config(group_id, "share.auto.offset.reset")), partition)
                sp = SharePartition(start, delivery_limit=limit, max_locks=locks)
                sp.version += 1  # a new share-partition is written once, as Kafka initializes it
            self.partitions[key] = sp
            if stored is None:
                self._changed(key, sp)
        sp.advance_to(partition.log.log_start_offset)
        return sp

    @staticmethod
    def _reset_offset(reset: str, partition: Any) -> int:
        """Where a new share-partition starts (``share.auto.offset.reset``): the log start,
        the high watermark, or the first record at or after now minus a duration."""
        if reset == "earliest":
            return int(partition.log.log_start_offset)
        if reset.startswith("by_duration:"):
            seconds = iso_duration_seconds(reset[len("by_duration:"):])
            if seconds is not None:
                found = partition.log.offset_for_timestamp(int((time.time() - seconds) * 1000))
                if found is not None:
                    return max(int(found[0]), int(partition.log.log_start_offset))
        return int(partition.high_watermark)

    def acquire(
        self, group_id: str, member_id: str, topic: str, index: int, partition: Any, max_records: int, max_bytes: int
    ) -> FetchResult:
        """One partition of a ShareFetch: read from the first redeliverable offset (or
        SPEO), acquire what the read holds, return the slice cut to it. With
        ``share.isolation.level=read_committed`` the read stops at the last stable offset
        and the records of aborted transactions are archived, never delivered (a read
        that held nothing else is followed by the next one)."""
        committed = self.group_config(group_id, "share.isolation.level") == "read_committed"
        for _ in range(16):
            result, aborted_only = self._acquire_once(
                group_id, member_id, topic, index, partition, max_records, max_bytes, committed)
            if not aborted_only:
                return result
        return FetchResult(None, 0, [])

    def _acquire_once(
        self, group_id: str, member_id: str, topic: str, index: int, partition: Any, max_records: int,
        max_bytes: int, committed: bool,
    ) -> tuple[FetchResult, bool]:
        nothing = FetchResult(None, 0, [])
        key = (group_id, topic, index)
        sp = self.share_partition(group_id, topic, index, partition)
        now = time.monotonic()
        if sp.release_expired(now):
            self._changed(key, sp)
        limit = partition.last_stable_offset if committed else partition.high_watermark
        start = sp.first_available()
        if start is not None and start >= limit:
            start = None  # redeliverable, but not readable at this isolation level yet
        if start is None:
            if sp.end_offset >= limit or sp.in_flight >= sp.max_locks:
                return nothing, False
            start = sp.end_offset
        if committed:
            read = partition.read_committed(start, max_bytes, min_one_message=True)
        else:
            read = partition.read(start, max_bytes, min_one_message=True)
        if read.records is None:
            return nothing, False
        file_slice = read.records.chunks[0]
        # enough batches for max_records from the read's start, or for the in-flight limit
        enough = max(start + max_records - 1, sp.start_offset + sp.max_locks - 1) if start < sp.end_offset \
            else start + min(max_records, max(sp.max_locks - sp.in_flight, 1)) - 1
        bounds = batch_bounds(file_slice, enough)
        if not bounds:
            return nothing, False
        lock_until = now + self.lock_duration_ms(group_id) / 1000
        acquired = sp.acquire(member_id, [(b, last) for b, last, _ in bounds], max_records, lock_until)
        if not acquired:
            return nothing, False
        last_acquired = acquired[-1].last
        self._changed(key, sp)
        if committed and read.aborted:
            dropped = [r for r in aborted_batches(file_slice, bounds, read.aborted) if r[0] <= last_acquired]
            if dropped:
                for a in acquired:
                    for first, last in dropped:
                        if first <= a.last and a.first <= last:
                            sp.acknowledge(member_id, max(first, a.first), min(last, a.last), REJECT)
                acquired = _without(acquired, dropped)
                self._changed(key, sp)
                if not acquired:
                    return nothing, True
        cut = next((e for _b, last, e in bounds if last >= last_acquired), bounds[-1][2])
        records = type(read.records)(type(file_slice)(file_slice.file, file_slice.position, cut), cut)
        return FetchResult(records, cut, acquired), False

    def acknowledge(
        self, group_id: str, member_id: str, topic: str, index: int, batches: list[tuple[int, int, list[int]]]
    ) -> ErrorCode:
        """Apply a partition's acknowledgement batches; the first error, or NONE."""
        key = (group_id, topic, index)
        sp = self.partitions.get(key)
        if sp is None:
            return ErrorCode.INVALID_RECORD_STATE
        error = ErrorCode.NONE
        for first, last, types in batches:
            try:
                if len(types) == 1:
                    sp.acknowledge(member_id, first, last, types[0])
                elif len(types) == last - first + 1:
                    run_start = first
                    for i in range(1, len(types) + 1):
                        if i == len(types) or types[i] != types[i - 1]:
                            sp.acknowledge(member_id, run_start, first + i - 1, types[i - 1])
                            run_start = first + i
                else:
                    raise KafkaError(ErrorCode.INVALID_REQUEST, "acknowledge types do not match the offsets")
            except KafkaError as exc:
                if error is ErrorCode.NONE:
                    error = exc.code
        self._changed(key, sp)
        return error

    # -- waiting and timers -------------------------------------------------------------

    def add_waiter(self, key: ShareKey, fut: asyncio.Future[None]) -> None:
        self._waiters.setdefault(key, set()).add(fut)

    def remove_waiter(self, key: ShareKey, fut: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(fut)
            if not waiters:
                del self._waiters[key]

    def changed(self, key: ShareKey, sp: SharePartition) -> None:
        """Tell the waiters, the lock timer and the persister that ``sp`` changed."""
        self._changed(key, sp)

    def _changed(self, key: ShareKey, sp: SharePartition) -> None:
        """After a change: wake fetches if something became available, re-arm the
        lock timer, tell the persister."""
        # an acknowledgement, release or expiry may let a waiting fetch acquire (records
        # became AVAILABLE, or the in-flight count fell below the lock limit)
        if sp.has_available(0x7FFFFFFFFFFFFFFF):
            for fut in self._waiters.get(key, ()):
                wake(fut)
        deadline = sp.next_deadline()
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_at(
                loop.time() + max(deadline - time.monotonic(), 0) + 0.001, self._expire, key
            )
        for listener in self.change_listeners:
            listener(key, sp)

    def _expire(self, key: ShareKey) -> None:
        self._timers.pop(key, None)
        sp = self.partitions.get(key)
        if sp is None:
            return
        sp.release_expired(time.monotonic())
        self._changed(key, sp)

    def drop(self, predicate: Any) -> None:
        """Forget the share-partitions matching ``predicate(key)`` (leadership moved away,
        a topic or group deleted)."""
        for key in [k for k in self.partitions if predicate(k)]:
            del self.partitions[key]
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()

    def leadership_changed(self, topic: str, index: int, is_leader: bool) -> None:
        """Share-partitions live with the partition's leadership: one this broker stops
        leading is dropped (the new leader starts from the persisted state)."""
        if not is_leader:
            self.drop(lambda k: k[1] == topic and k[2] == index)

    def topic_removed(self, name: str) -> None:
        self.drop(lambda k: k[1] == name)
        for session in self.sessions.values():
            session.partitions = {tp for tp in session.partitions if tp[0] != name}

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
