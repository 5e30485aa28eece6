"""Idempotent producer state of one partition: epochs, sequences, recent batches.

Kafka deduplicates retried batches of an idempotent producer by (producer id, epoch,
sequence): the leader remembers the last five batches of each producer and answers a
retry of one of them with its original offsets instead of appending it again; a batch
whose first sequence does not follow the last one is OUT_OF_ORDER_SEQUENCE_NUMBER, and
an older epoch is INVALID_PRODUCER_EPOCH. A producer the partition has not seen (new,
or from before a restart: this state is kept in memory only for now) is accepted at any
sequence, as Kafka does since KIP-360.

This cache of recent batches is not snapshotted (the log's producer state is:
epochs, last sequences and open transactions, :mod:`moldau.storage.txn_state`, which
also fences older epochs); it is rebuilt from the tail of the log (the last ``REBUILD_SCAN_BYTES``) the first time an idempotent
producer writes to the partition after a start, so that a retry which straddles a broker
restart is still recognised as a duplicate. Producers whose last batches lie further back
are treated as unknown, which Kafka allows.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import TimestampType, iter_batches

if TYPE_CHECKING:
    from moldau.storage.log import Log

MAX_CACHED_BATCHES = 5
REBUILD_SCAN_BYTES = 4 * 1024 * 1024
SEQUENCE_LIMIT = 1 << 31


@dataclass(slots=True)
class CachedBatch:
    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int
    log_append_time: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    batches: collections.deque[CachedBatch] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_CACHED_BATCHES)
    )

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else -1


class ProducerStateManager:
    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}

    def check(self, producer_id: int, epoch: int, first_sequence: int, count: int) -> CachedBatch | None:
        """Validate a batch before it is appended; returns the original of a duplicate."""
        entry = self.producers.get(producer_id)
        if entry is None:
            return None
        if epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"Epoch {epoch} of producer {producer_id} is older than {entry.epoch}",
            )
        if epoch > entry.epoch:
            return None  # a bumped epoch starts sequences afresh
        last_sequence = (first_sequence + count - 1) % SEQUENCE_LIMIT
        for cached in entry.batches:
            if cached.first_sequence == first_sequence and cached.last_sequence == last_sequence:
                return cached
        expected = (entry.last_sequence + 1) % SEQUENCE_LIMIT
        if entry.batches and first_sequence != expected:
            raise KafkaError(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"Out of order sequence number for producer {producer_id}: "
                f"{first_sequence} (expected {expected})",
            )
        return None

    def update(
        self,
        producer_id: int,
        epoch: int,
        first_sequence: int,
        count: int,
        first_offset: int,
        last_offset: int,
        log_append_time: int,
    ) -> None:
        entry = self.producers.get(producer_id)
        if entry is None or epoch != entry.epoch:
            entry = self.producers[producer_id] = ProducerEntry(epoch)
        entry.batches.append(
            CachedBatch(
                first_sequence,
                (first_sequence + count - 1) % SEQUENCE_LIMIT,
                first_offset,
                last_offset,
                log_append_time,
            )
        )


def rebuild_from_log(state: ProducerStateManager, log: Log, scan_bytes: int = REBUILD_SCAN_BYTES) -> None:
    """Replay the producer batches in the last ``scan_bytes`` of ``log`` into ``state``."""
    plan = []
    budget = scan_bytes
    for segment in reversed(log.segments):
        size = segment.size
        if size == 0:
            continue
        if size <= budget:
            plan.append((segment, 0))
            budget -= size
        else:
            # index entries point at batch starts: resume walking from one of them
            plan.append((segment, segment.offset_index.floor_position(size - budget)))
            budget = 0
        if budget <= 0:
            break
    for segment, start in reversed(plan):
        handle = segment.file()
        data = os.pread(handle.fileno(), segment.size - start, start)
        for batch in iter_batches(data, allow_partial_tail=True):
            if batch.producer_id < 0 or batch.is_control:
                continue
            append_time = batch.max_timestamp if batch.timestamp_type == TimestampType.LOG_APPEND_TIME else -1
            state.update(
                batch.producer_id,
                batch.producer_epoch,
                batch.base_sequence,
                batch.last_offset_delta + 1,
                batch.base_offset,
                batch.last_offset,
                append_time,
            )


def seed_from_log_state(state: ProducerStateManager, log: Log) -> None:
    """Add the producers the scanned tail did not show, from the log's producer state
    (its snapshot and replay, :mod:`moldau.storage.txn_state`): their epoch and last
    batch, as Kafka keeps them across a restart, so a retry of that batch is still a
    duplicate and a gap after it is OUT_OF_ORDER_SEQUENCE_NUMBER."""
    append_time = log.config.log_append_time
    for producer_id, info in log.txn_state.producers.items():
        if producer_id in state.producers or info.last_sequence < 0 or info.last_offset < 0:
            continue
        entry = state.producers[producer_id] = ProducerEntry(info.epoch)
        entry.batches.append(
            CachedBatch(
                (info.last_sequence - info.offset_delta) % SEQUENCE_LIMIT,
                info.last_sequence,
                info.last_offset - info.offset_delta,
                info.last_offset,
                info.last_timestamp if append_time else -1,
            )
        )
