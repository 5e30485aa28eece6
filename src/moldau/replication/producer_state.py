"""Idempotent producer state of one partition: epochs, sequences, recent batches.

Kafka deduplicates retried batches of an idempotent producer by (producer id, epoch,
sequence): the leader remembers the last five batches of each producer and answers a
retry of one of them with its original offsets instead of appending it again; a batch
whose first sequence does not follow the last one is OUT_OF_ORDER_SEQUENCE_NUMBER, and
an older epoch is INVALID_PRODUCER_EPOCH. A producer the partition has not seen (new,
or from before a restart: this state is kept in memory only for now) is accepted at any
sequence, as Kafka does since KIP-360.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from moldau.protocol.errors import ErrorCode, KafkaError

MAX_CACHED_BATCHES = 5
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
