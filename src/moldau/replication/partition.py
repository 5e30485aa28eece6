"""One partition as its replica on this broker sees it.

Theory of operation: storage knows offsets and bytes; a Partition adds what makes the
log a replica -- the leader and its epoch, the in-sync replica set and the high
watermark, which is the offset up to which every ISR member has the data and hence what
consumers may read. A single node is a cluster of one: the ISR is this broker alone,
so the high watermark follows the log end offset at once.

With followers (Kafka's protocol, see docs/08-cluster.md): the leader learns each
follower's log end offset from the fetch offsets of its replica Fetch requests
(:meth:`Partition.update_follower_fetch`) and advances the high watermark to the
smallest log end offset of the ISR; a follower that has not caught up with the leader's
log end within ``replica.lag.time.max.ms`` is proposed for removal from the ISR, one that
reaches the high watermark for addition (:meth:`isr_change`; the replica manager writes
the change to the metadata store). A follower appends what it fetched unchanged
(:meth:`append_as_follower`) and takes min(leader's high watermark, own log end).
Leader epochs and where each began are kept in the partition's leader-epoch cache.
A leader acts as one only while its broker's session holds (:attr:`is_leader` reads the
session's clock, see ``moldau.metastore.store.Session``): a broker cut off from the
metadata store stops leading before a successor can be elected, and answers
NOT_LEADER_OR_FOLLOWER without waiting to be told.
All methods run on the event loop thread.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from moldau.metastore.store import Session
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import (
    BatchView,
    Compression,
    RecordInput,
    build_batch,
    decode_records,
    iter_batches,
    validate_batches,
)
from moldau.records.validation import validate_records
from moldau.replication.producer_state import (
    ProducerStateManager,
    rebuild_from_log,
    seed_from_log_state,
)
from moldau.storage.leader_epoch import LEADER_EPOCH_CHECKPOINT, LeaderEpochCache
from moldau.storage.log import AppendInfo, Log
from moldau.storage.txn_index import AbortedTxn
from moldau.storage.txn_state import encode_marker_record

_ALWAYS = Session()
_monotonic = time.monotonic  # read on every leadership test


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def wake(waiter: asyncio.Future[None]) -> None:
    """Complete a waiter future (a timer's callback; a no-op once it is done)."""
    if not waiter.done():
        waiter.set_result(None)


@dataclass(slots=True)
class FollowerState:
    """What the leader knows of one follower, from its replica fetches (Kafka's
    ``Replica``): its log end offset (-1 until it fetched in this leader epoch) and
    when it was last caught up with the leader's log end."""

    log_end_offset: int = -1
    last_caught_up_ms: int = 0
    last_fetch_leader_leo: int = -1
    last_fetch_ms: int = 0


@dataclass(slots=True)
class PartitionRead:
    """What a fetch of one partition returns: a file slice (or nothing) and the offsets."""

    records: object | None  # a RecordsSlice, or None when there is nothing to send
    size: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    #: read_committed reads: the aborted transactions overlapping what was read
    aborted: list[AbortedTxn] | None = None


class RecordsSlice:
    """Record data as a file slice, handed to the codec as a chunked payload."""

    __slots__ = ("chunks", "size")

    def __init__(self, file_slice: object, size: int) -> None:
        self.chunks = [file_slice]
        self.size = size


LONG_MAX = 9223372036854775807
LONG_MIN = -9223372036854775808
TARGET_CODECS = {
    "uncompressed": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}


def recompress(records: memoryview, codec: Compression) -> memoryview:
    """Rebuild every batch with ``codec`` (topic compression.type other than producer).

    This is the one place the broker decodes records on the produce path, and only
    when an operator asks for it, as in Kafka.
    """
    out = bytearray()
    for batch in iter_batches(records):
        if batch.compression == codec or batch.is_control:
            out += batch.batch_bytes()
            continue
        out += build_batch(
            decode_records(batch),
            base_offset=batch.base_offset,
            compression=codec,
            producer_id=batch.producer_id,
            producer_epoch=batch.producer_epoch,
            base_sequence=batch.base_sequence,
            is_transactional=batch.is_transactional,
            partition_leader_epoch=batch.partition_leader_epoch,
            timestamp_type=batch.timestamp_type,
        )
    return memoryview(out)


class Partition:
    def __init__(
        self,
        topic: str,
        index: int,
        topic_id: uuid.UUID,
        log: Log,
        *,
        broker_id: int,
        leader: int,
        leader_epoch: int,
        replicas: list[int],
        isr: list[int],
        partition_epoch: int = 0,
        session: Session | None = None,
        high_watermark: int | None = None,
    ) -> None:
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.log = log
        self.broker_id = broker_id
        self.leader = leader
        self.leader_epoch = leader_epoch
        self.replicas = replicas
        self.isr = isr
        self.partition_epoch = partition_epoch
        #: the broker's membership; leading needs it valid (a single node's always is)
        self.session = session if session is not None else _ALWAYS
        if isr == [broker_id]:
            self.high_watermark = log.log_end_offset  # a cluster of one: all it has is committed
        else:
            # the checkpointed value (replication-offset-checkpoint), within the log as
            # it is now: a crash may have cut the log below what was checkpointed
            known = log.log_start_offset if high_watermark is None else high_watermark
            self.high_watermark = min(max(known, log.log_start_offset), log.log_end_offset)
        log.on_high_watermark(self.high_watermark)  # markers replayed below it are stable
        self.epochs = LeaderEpochCache(log.dir / LEADER_EPOCH_CHECKPOINT)
        self.epochs.truncate_from_end(log.log_end_offset + 1)
        self.followers: dict[int, FollowerState] = {}
        #: an ISR change written to the store and not yet applied (one at a time)
        self.isr_change_pending = False
        #: a reassignment in progress (set with the state; kept by the leader's ISR writes)
        self.adding_replicas: list[int] = []
        self.removing_replicas: list[int] = []
        self._role_applied = False
        self._append_waiters: set[asyncio.Future[None]] = set()
        self.min_insync_replicas = 1
        self.compression_type = "producer"
        self.timestamp_before_max_ms = LONG_MAX
        self.timestamp_after_max_ms = LONG_MAX
        self.producer_state = ProducerStateManager()
        self._producer_state_loaded = False
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def is_leader(self) -> bool:
        """Leader by the metadata, and the broker's session certainly still held."""
        return self.leader == self.broker_id and _monotonic() < self.session.valid_until

    @property
    def fenced(self) -> bool:
        """Leader by the metadata as last seen, but its session may have lapsed."""
        return self.leader == self.broker_id and _monotonic() >= self.session.valid_until

    # -- roles ------------------------------------------------------------------------

    def apply_state(
        self, leader: int, leader_epoch: int, replicas: list[int], isr: list[int], partition_epoch: int
    ) -> str | None:
        """Take a partition state from the metadata; returns "leader" or "follower"
        when this replica's role or the leader epoch changed (so fetchers and
        coordinators must follow), else None."""
        changed = leader != self.leader or leader_epoch != self.leader_epoch
        first, self._role_applied = not self._role_applied, True
        self.replicas = list(replicas)
        self.partition_epoch = partition_epoch
        self.isr_change_pending = False
        if leader == self.broker_id:
            self.isr = list(isr)
            if changed or first:
                self._become_leader(leader_epoch)
                return "leader"
            self._maybe_advance_high_watermark()
            return None
        self.leader, self.leader_epoch, self.isr = leader, leader_epoch, list(isr)
        if changed or first:
            self.followers.clear()
            self._wake()
            self._wake_appenders()
            return "follower"
        return None

    def _become_leader(self, leader_epoch: int) -> None:
        """Kafka's makeLeader: a new epoch starts at our log end; followers are
        unknown until they fetch; producer state is rebuilt from the log (it is in the
        replicated batches) before the next idempotent append."""
        self.leader = self.broker_id
        self.leader_epoch = leader_epoch
        self.epochs.assign(leader_epoch, self.log.log_end_offset, write=False)
        now = _now_ms()
        self.followers = {r: FollowerState(last_caught_up_ms=now) for r in self.replicas if r != self.broker_id}
        self.producer_state = ProducerStateManager()
        self._producer_state_loaded = False
        self._maybe_advance_high_watermark()
        self._wake()

    def session_resumed(self, now_ms: int | None = None) -> None:
        """This broker leads again after its session lapsed: its followers' fetches were
        refused meanwhile, which is no lag of theirs, so each gets a fresh
        ``replica.lag.time.max.ms`` before it can be taken out of the ISR."""
        now = _now_ms() if now_ms is None else now_ms
        for follower in self.followers.values():
            follower.last_caught_up_ms = max(follower.last_caught_up_ms, now)

    def update_follower_fetch(self, replica_id: int, fetch_offset: int, now_ms: int | None = None) -> None:
        """A replica Fetch from ``replica_id`` at ``fetch_offset``: its log end offset
        (Kafka's updateFollowerFetchState), then maybe a higher high watermark."""
        follower = self.followers.get(replica_id)
        if follower is None:
            if replica_id not in self.replicas:
                return
            follower = self.followers[replica_id] = FollowerState()
        now = _now_ms() if now_ms is None else now_ms
        leo = self.log.log_end_offset
        if fetch_offset >= leo:
            follower.last_caught_up_ms = now
        elif fetch_offset >= follower.last_fetch_leader_leo >= 0:
            follower.last_caught_up_ms = max(follower.last_caught_up_ms, follower.last_fetch_ms)
        follower.last_fetch_leader_leo = leo
        follower.last_fetch_ms = now
        follower.log_end_offset = fetch_offset
        self._maybe_advance_high_watermark()

    def isr_change(self, lag_max_ms: int, now_ms: int | None = None) -> list[int] | None:
        """The ISR this leader should propose now (Kafka's rules), or None: followers
        not caught up for ``lag_max_ms`` leave; a follower at or past the high
        watermark, and past the start of this leader's epoch, joins. The leader
        always stays."""
        if not self.is_leader or self.isr_change_pending:
            return None
        now = _now_ms() if now_ms is None else now_ms
        epoch_start = self.epochs.entries[-1][1] if self.epochs.entries else 0
        isr = list(self.isr)
        out = [
            r for r in isr
            if r != self.broker_id
            and (f := self.followers.get(r)) is not None
            and now - f.last_caught_up_ms > lag_max_ms
        ]
        if out:
            return [r for r in isr if r not in out]
        joining = [
            r for r, f in sorted(self.followers.items())
            if r not in isr and r in self.replicas
            and f.log_end_offset >= self.high_watermark and f.log_end_offset >= epoch_start
        ]
        if joining:
            return isr + joining
        return None

    def append_as_follower(self, records: memoryview, leader_high_watermark: int) -> None:
        """Append what the leader sent, unchanged, noting where new epochs begin; the
        high watermark becomes min(leader's, own log end)."""
        if len(records):
            latest = self.epochs.latest_epoch
            for batch in iter_batches(records, allow_partial_tail=True):
                epoch = batch.partition_leader_epoch
                if epoch > latest:
                    self.epochs.assign(epoch, batch.base_offset)
                    latest = epoch
            self.log.append_as_follower(records, now_ms=int(time.time() * 1000))
        hw = min(leader_high_watermark, self.log.log_end_offset)
        if hw > self.high_watermark:
            self.high_watermark = hw
            self.log.on_high_watermark(hw)
            self._wake()

    def truncate_to(self, offset: int) -> None:
        """Cut the log at ``offset`` (a follower's truncation to the leader's history)."""
        if offset < self.log.log_end_offset:
            self.log.truncate_to(offset)
        self.epochs.truncate_from_end(self.log.log_end_offset)
        self.high_watermark = min(self.high_watermark, self.log.log_end_offset)
        self.log.on_high_watermark(self.high_watermark)  # the reloaded state's markers

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self.log.truncate_fully_and_start_at(offset)
        self.epochs.clear()
        self.high_watermark = offset
        self.log.on_high_watermark(offset)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (epoch, end offset) of ``epoch`` in this log's history."""
        return self.epochs.end_offset_for(epoch, self.log.log_end_offset)

    def check_leader_epoch(self, current_leader_epoch: int) -> None:
        """Kafka's fencing: a client with a newer epoch than ours, or an older one, is told."""
        if current_leader_epoch < 0 or current_leader_epoch == self.leader_epoch:
            return
        if current_leader_epoch > self.leader_epoch:
            raise KafkaError(ErrorCode.UNKNOWN_LEADER_EPOCH)
        raise KafkaError(ErrorCode.FENCED_LEADER_EPOCH)

    def append_as_leader(self, records: memoryview, required_acks: int, now_ms: int) -> AppendInfo:
        if not self.is_leader:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if required_acks == -1 and len(self.isr) < self.min_insync_replicas:
            raise KafkaError(ErrorCode.NOT_ENOUGH_REPLICAS)
        timestamp_bounds = self._timestamp_bounds(now_ms)
        target = TARGET_CODECS.get(self.compression_type)
        if target is not None:
            # validate headers, CRCs and every record before decoding: recompressing
            # must neither launder a corrupt batch nor trip over a malformed one
            config = self.log.config
            validate_batches(records, max_batch_bytes=config.max_message_bytes)
            validate_records(
                records,
                compacted=config.compact,
                log_append_time=config.log_append_time,
                timestamp_bounds=timestamp_bounds,
                topic_partition=f"{self.topic}-{self.index}",
            )
            records = recompress(records, target)
        head = BatchView(records, 0)
        # the log validates every record (keys, timestamps) on append
        producer_id = head.producer_id
        if producer_id >= 0:
            self._check_producer_epoch(producer_id, head.producer_epoch)
            if not self._producer_state_loaded:
                rebuild_from_log(self.producer_state, self.log)
                seed_from_log_state(self.producer_state, self.log)
                self._producer_state_loaded = True
            epoch, sequence = head.producer_epoch, head.base_sequence
            count = head.last_offset_delta + 1
            duplicate = self.producer_state.check(producer_id, epoch, sequence, count)
            if duplicate is not None:
                return AppendInfo(
                    first_offset=duplicate.first_offset,
                    last_offset=duplicate.last_offset,
                    log_append_time=duplicate.log_append_time,
                    log_start_offset=self.log.log_start_offset,
                    record_count=0,
                    max_timestamp=-1,
                )
        if self.epochs.dirty:
            self.epochs.flush()  # the epoch's first batch: its start is on disk first
        info = self.log.append_as_leader(
            records, leader_epoch=self.leader_epoch, now_ms=now_ms, timestamp_bounds=timestamp_bounds
        )
        if producer_id >= 0:
            self.producer_state.update(
                producer_id, epoch, sequence, count, info.first_offset, info.last_offset, info.log_append_time
            )
        self._maybe_advance_high_watermark()
        if self._append_waiters:
            self._wake_appenders()
        return info

    def append_as_coordinator(self, records: memoryview, now_ms: int) -> AppendInfo:
        """Append batches a coordinator wrote (Kafka's ``AppendOrigin.COORDINATOR``): the
        group coordinator's transactional offsets, which carry a producer id but no
        sequence numbers. Numbered here and stamped with the leader epoch; headers and
        CRC are checked, not what a client's batches must satisfy. The log keeps the
        producer's transaction open until its marker, as for any transactional batch.
        """
        if not self.is_leader:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if self.epochs.dirty:
            self.epochs.flush()
        info = self.log.append_as_leader(records, leader_epoch=self.leader_epoch, now_ms=now_ms, from_client=False)
        self._maybe_advance_high_watermark()
        if self._append_waiters:
            self._wake_appenders()
        return info

    def _check_producer_epoch(self, producer_id: int, epoch: int) -> None:
        """Kafka's checkProducerEpoch against the log's producer state (which every
        replica keeps, markers included): an older epoch is INVALID_PRODUCER_EPOCH,
        what Kafka answers a client since 2.7 (the producer then aborts and retries,
        or learns it is fenced from its coordinator)."""
        known = self.log.txn_state.producers.get(producer_id)
        if known is not None and epoch < known.epoch:
            raise KafkaError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"Epoch of producer {producer_id} is {epoch}, which is smaller than the "
                f"last seen epoch {known.epoch}",
            )

    def write_txn_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        now_ms: int,
        transaction_version: int = 0,
    ) -> AppendInfo:
        """Append a commit or abort marker for ``producer_id`` (WriteTxnMarkers, as
        leader): a control batch in Kafka's format, which completes the producer's
        transaction here, moves the last stable offset and, for an abort, adds an
        entry to the aborted index. Refused, with nothing appended: a non-leader
        (NOT_LEADER_OR_FOLLOWER), an older producer epoch (INVALID_PRODUCER_EPOCH), an
        older coordinator epoch than the last marker's (TRANSACTION_COORDINATOR_FENCED).
        With transactions version 2 (KIP-890) the coordinator bumps the epoch before
        each marker, so a marker must carry a *newer* epoch than the producer's last
        one; an equal one is a late duplicate, INVALID_PRODUCER_EPOCH as in Kafka.
        A marker for a producer with no open transaction here is appended anyway, as
        Kafka does (it completes nothing)."""
        if not self.is_leader:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        known = self.log.txn_state.producers.get(producer_id)
        if known is not None:
            stale = producer_epoch <= known.epoch if transaction_version >= 2 else producer_epoch < known.epoch
            if stale:
                raise KafkaError(
                    ErrorCode.INVALID_PRODUCER_EPOCH,
                    f"Epoch of producer {producer_id} is {producer_epoch}, which is smaller than "
                    f"the last seen epoch {known.epoch}",
                )
            if coordinator_epoch < known.coordinator_epoch:
                raise KafkaError(
                    ErrorCode.TRANSACTION_COORDINATOR_FENCED,
                    f"Coordinator epoch {coordinator_epoch} of the marker for producer {producer_id} "
                    f"is older than the last one, {known.coordinator_epoch}",
                )
        key, value = encode_marker_record(commit, coordinator_epoch)
        batch = bytearray(
            build_batch(
                [RecordInput(key=key, value=value, timestamp=now_ms)],
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                is_transactional=True,
                is_control=True,
            )
        )
        if self.epochs.dirty:
            self.epochs.flush()
        info = self.log.append_as_leader(
            memoryview(batch), leader_epoch=self.leader_epoch, now_ms=now_ms, from_client=False
        )
        self._maybe_advance_high_watermark()
        if self._append_waiters:
            self._wake_appenders()
        return info

    def remove_expired_producers(self, now_ms: int, expiration_ms: int) -> int:
        """Kafka's producer id expiration: producers idle past ``expiration_ms`` with no
        open transaction are forgotten (a later batch of theirs is accepted as from a
        new producer); returns how many."""
        expired = self.log.txn_state.remove_expired(now_ms, expiration_ms)
        for pid in expired:
            self.producer_state.producers.pop(pid, None)
        return len(expired)

    @property
    def last_stable_offset(self) -> int:
        """Kafka's LSO: the high watermark, or the first offset of a transaction that is
        undecided or whose marker is not replicated yet, whichever is lower."""
        first = self.log.first_unstable_offset()
        hw = self.high_watermark
        return hw if first is None or first > hw else first

    def _timestamp_bounds(self, now_ms: int) -> tuple[int, int] | None:
        """The record timestamps message.timestamp.before/after.max.ms allow, or None.

        Kafka checks every record of a CreateTime topic against them and answers
        INVALID_TIMESTAMP with a per-record error for each one outside.
        """
        before, after = self.timestamp_before_max_ms, self.timestamp_after_max_ms
        if self.log.config.log_append_time or (before >= LONG_MAX and after >= LONG_MAX):
            return None
        low = now_ms - before if before < LONG_MAX else LONG_MIN
        high = now_ms + after if after < LONG_MAX else LONG_MAX
        return max(low, LONG_MIN), min(high, LONG_MAX)

    def _maybe_advance_high_watermark(self) -> None:
        """The high watermark is the smallest log end offset of the ISR (a follower
        that has not fetched in this epoch yet holds it back); it never goes back."""
        me = self.broker_id
        if self.leader != me:
            return
        new_hw = self.log.log_end_offset
        isr = self.isr
        if len(isr) != 1 or isr[0] != me:  # the hot path of a single node skips this
            for replica in isr:
                if replica == me:
                    continue
                follower = self.followers.get(replica)
                if follower is None or follower.log_end_offset < 0:
                    return
                new_hw = min(new_hw, follower.log_end_offset)
        if new_hw > self.high_watermark:
            self.high_watermark = new_hw
            self.log.on_high_watermark(new_hw)
            self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_high_watermark(self, offset: int, timeout_s: float) -> ErrorCode:
        """Wait until the high watermark reaches ``offset`` in the current leader epoch:
        NONE, NOT_LEADER_OR_FOLLOWER if leadership moved, REQUEST_TIMED_OUT."""
        epoch = self.leader_epoch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if not self.is_leader or self.leader_epoch != epoch:
                return ErrorCode.NOT_LEADER_OR_FOLLOWER
            if self.high_watermark >= offset:
                return ErrorCode.NONE
            remaining = deadline - loop.time()
            if remaining <= 0:
                return ErrorCode.REQUEST_TIMED_OUT
            waiter: asyncio.Future[None] = loop.create_future()
            self.add_waiter(waiter)
            timer = loop.call_later(remaining, wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self.remove_waiter(waiter)

    def _wake_appenders(self) -> None:
        waiters, self._append_waiters = self._append_waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def add_append_waiter(self, fut: asyncio.Future[None]) -> None:
        """Wake ``fut`` when the log end moves (a follower's fetch waiting for data)."""
        self._append_waiters.add(fut)

    def remove_append_waiter(self, fut: asyncio.Future[None]) -> None:
        self._append_waiters.discard(fut)

    def add_waiter(self, fut: asyncio.Future[None]) -> None:
        """Wake ``fut`` once, when the high watermark or this replica's role moves (a
        delayed fetch waiting for data; a delayed produce, which is not a future but
        answers the same ``done()`` and ``set_result()``)."""
        self._waiters.add(fut)

    def remove_waiter(self, fut: asyncio.Future[None]) -> None:
        self._waiters.discard(fut)

    def read(self, fetch_offset: int, max_bytes: int, *, min_one_message: bool) -> PartitionRead:
        """Read committed data (up to the high watermark) from ``fetch_offset``."""
        hw = self.high_watermark
        log = self.log
        if fetch_offset >= hw and (fetch_offset > log.log_end_offset or fetch_offset < log.log_start_offset):
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE)
        return self._read_below(fetch_offset, hw, max_bytes, min_one_message)

    def read_committed(self, fetch_offset: int, max_bytes: int, *, min_one_message: bool) -> PartitionRead:
        """A read_committed consumer's read: up to the last stable offset, with the
        aborted transactions that overlap it (Kafka's FetchIsolation.TXN_COMMITTED)."""
        hw = self.high_watermark
        log = self.log
        if fetch_offset >= hw and (fetch_offset > log.log_end_offset or fetch_offset < log.log_start_offset):
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE)
        lso = self.last_stable_offset
        records = None
        size = 0
        aborted: list[AbortedTxn] = []
        if fetch_offset < lso:
            info = log.read(fetch_offset, max_bytes, max_offset=lso, min_one_message=min_one_message)
            if info.slice is not None and info.slice.size > 0:
                size = info.slice.size
                records = RecordsSlice(info.slice, size)
                # Kafka's bound: what was read, not the LSO, so a fetch is told only of
                # the aborted transactions its batches can hold (no bound to look up in
                # the common case of a log without aborted transactions)
                if len(log.aborted):
                    aborted = log.collect_aborted(fetch_offset, min(log.fetch_upper_bound(info), lso))
        return PartitionRead(records, size, hw, lso, log.log_start_offset, aborted)

    def read_for_follower(self, fetch_offset: int, max_bytes: int, *, min_one_message: bool) -> PartitionRead:
        """Read for a replica fetch: up to the log end, not the high watermark."""
        log = self.log
        end = log.log_end_offset
        if fetch_offset > end or fetch_offset < log.log_start_offset:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE)
        return self._read_below(fetch_offset, end, max_bytes, min_one_message)

    def _read_below(self, fetch_offset: int, limit: int, max_bytes: int, min_one_message: bool) -> PartitionRead:
        """The batches from ``fetch_offset`` up to (not including) offset ``limit``."""
        log = self.log
        records = None
        size = 0
        if fetch_offset < limit:
            info = log.read(fetch_offset, max_bytes, max_offset=limit, min_one_message=min_one_message)
            if info is not None and info.slice is not None and info.slice.size > 0:
                size = info.slice.size
                records = RecordsSlice(info.slice, size)
        hw = self.high_watermark
        first = log.first_unstable_offset()
        lso = hw if first is None or first > hw else first
        return PartitionRead(records, size, hw, lso, log.log_start_offset)
