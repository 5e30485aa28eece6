"""One partition as its replica on this broker sees it.

Theory of operation: storage knows offsets and bytes; a Partition adds what makes the
log a replica -- the leader and its epoch, the in-sync replica set and the high
watermark, which is the offset up to which every ISR member has the data and hence what
consumers may read. A single node is a cluster of one: the ISR is this broker alone,
so the high watermark follows the log end offset at once; with followers the same code
waits for their fetch positions (replication is not implemented yet). All methods run
on the event loop thread.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import (
    BatchView,
    Compression,
    build_batch,
    decode_records,
    iter_batches,
    validate_batches,
)
from moldau.records.validation import validate_records
from moldau.replication.producer_state import ProducerStateManager, rebuild_from_log
from moldau.storage.log import AppendInfo, Log


@dataclass(slots=True)
class PartitionRead:
    """What a fetch of one partition returns: a file slice (or nothing) and the offsets."""

    records: object | None  # a RecordsSlice, or None when there is nothing to send
    size: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int


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
        self.high_watermark = log.log_end_offset if isr == [broker_id] else log.log_start_offset
        self.min_insync_replicas = 1
        self.compression_type = "producer"
        self.timestamp_before_max_ms = LONG_MAX
        self.timestamp_after_max_ms = LONG_MAX
        self.producer_state = ProducerStateManager()
        self._producer_state_loaded = False
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def is_leader(self) -> bool:
        return self.leader == self.broker_id

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
            if not self._producer_state_loaded:
                rebuild_from_log(self.producer_state, self.log)
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
        info = self.log.append_as_leader(
            records, leader_epoch=self.leader_epoch, now_ms=now_ms, timestamp_bounds=timestamp_bounds
        )
        if producer_id >= 0:
            self.producer_state.update(
                producer_id, epoch, sequence, count, info.first_offset, info.last_offset, info.log_append_time
            )
        self._maybe_advance_high_watermark()
        return info

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
        if self.isr == [self.broker_id]:
            new_hw = self.log.log_end_offset
            if new_hw != self.high_watermark:
                self.high_watermark = new_hw
                self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def add_waiter(self, fut: asyncio.Future[None]) -> None:
        """Wake ``fut`` when the high watermark moves (a delayed fetch waiting for data)."""
        self._waiters.add(fut)

    def remove_waiter(self, fut: asyncio.Future[None]) -> None:
        self._waiters.discard(fut)

    def read(self, fetch_offset: int, max_bytes: int, *, min_one_message: bool) -> PartitionRead:
        """Read committed data (up to the high watermark) from ``fetch_offset``."""
        hw = self.high_watermark
        log = self.log
        records = None
        size = 0
        if fetch_offset < hw:
            info = log.read(fetch_offset, max_bytes, max_offset=hw, min_one_message=min_one_message)
            if info is not None and info.slice is not None and info.slice.size > 0:
                size = info.slice.size
                records = RecordsSlice(info.slice, size)
        elif fetch_offset > log.log_end_offset or fetch_offset < log.log_start_offset:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE)
        return PartitionRead(records, size, hw, hw, log.log_start_offset)
