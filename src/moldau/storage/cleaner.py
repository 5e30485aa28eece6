"""The log cleaner: compaction of logs whose ``cleanup.policy`` includes ``compact``.

Theory of operation (Kafka's ``LogCleaner``, ``Cleaner``, ``LogCleanerManager``)
--------------------------------------------------------------------------------
A compacted log keeps, for every key, at least its latest record. Each log is two
parts: the *clean* part below its first dirty offset (already compacted; Kafka's
``cleaner-offset-checkpoint`` file in the data dir remembers that offset per
partition) and the *dirty* part above it. A cleaning pass on one log:

1. **Choose** (:meth:`LogCleaner.grab_filthiest_log`): a log is cleanable up to its
   *first uncleanable offset*: the active segment's base (the active segment is
   never touched), lowered to the base of the first segment holding records younger
   than ``min.compaction.lag.ms``, and to the partition's high watermark when the
   broker provides it. Its dirty ratio is dirty bytes / (clean + dirty bytes) of the
   inactive segments in range; the log qualifies when the ratio exceeds
   ``min.cleanable.dirty.ratio``, or when its first dirty batch is older than
   ``max.compaction.lag.ms``, or when tombstones it kept have passed their delete
   horizon. The filthiest qualifying log goes first.
2. **Map** the dirty part: key hash -> latest offset in a fixed-size
   :class:`~.cleaner_offset_map.OffsetMap` (``log.cleaner.dedupe.buffer.size``
   shared by ``log.cleaner.threads``). If the map fills, only the part mapped so
   far is cleaned and the rest waits for the next pass: memory stays bounded.
3. **Clean** every segment from the start of the log up to the mapped end, in
   groups of consecutive segments whose sizes add up to at most ``segment.bytes``
   (and whose indexes fit ``segment.index.bytes`` and whose offsets fit one
   segment), each group into one new segment. A record is kept when it is past the
   mapped end, or when it is the latest for its key and is not a tombstone whose
   delete horizon has passed. Offsets never change: a rewritten batch keeps its base
   offset, last offset delta, producer id, epoch and sequence, and simply has gaps.
4. **Swap** each cleaned segment in (below), then advance the first dirty offset.

Tombstones (KIP-534, the batch v2 scheme; the older mtime-based "legacy horizon" is
not used): the first pass that keeps a tombstone rewrites its batch with the
``delete horizon`` attribute bit set and ``baseTimestamp`` = now +
``delete.retention.ms`` (record timestamp deltas are re-encoded against it, so
record timestamps do not change). A later pass drops the tombstone once its batch's
horizon has passed; consumers thus have ``delete.retention.ms`` after the
*first cleaning* to see a delete. The cleaner schedules that later pass itself.

Transactions (Kafka's ``CleanedTransactionMetadata``): the log is cleanable only below
its first unstable offset (no undecided transaction is touched). The aborted
transactions overlapping the range come from the log's aborted index; reading batches
in offset order, a producer's transactional batches between an aborted transaction's
first offset and its marker are *aborted data*: they never enter the offset map and are
removed. Committed transactional records are compacted like any other. A transaction
marker is kept while data of its transaction was seen in the pass; once none is left
it gets a delete horizon (``delete.retention.ms``, as a tombstone does) and a later pass
past the horizon removes it, with its aborted-index entry. A batch whose records are
all removed is still kept, empty (a header with ``recordsCount`` 0 and its original
offsets), when it is its producer's last data batch in the cleaned range (its sequence
numbers are producer state) or the last batch of the cleaning round (the log keeps its
last offset), like Kafka's ``RETAIN_EMPTY``.

Crash safety (Kafka's file scheme): a group is cleaned into ``<base>.log.cleaned``
(+ ``.index.cleaned``, ``.timeindex.cleaned``), fsynced, renamed ``*.swap`` and the
directory fsynced; only then does the event loop thread, in
:meth:`~moldau.storage.log.Log.replace_segments`, rename the old segments to
``*.deleted`` (unlinked in the background: fetches holding their file slices keep
reading) and the ``.swap`` files to their final names. On open,
:func:`~moldau.storage.log.complete_swaps` finishes a swap that a crash interrupted
(``.swap`` is complete, so it replaces the old segments of its offset range) and
``.cleaned``/``.deleted`` leftovers are removed; no record is lost or duplicated
at any step.

Threading: cleaning runs on ``log.cleaner.threads`` daemon threads; all reading,
writing and fsyncing of segment files happens there. The event loop thread (the
logs' owner) only runs the swap, handed over with ``loop.call_soon_threadsafe``
(without a loop, e.g. in tests, the caller's thread is the owner). Candidates are
chosen from snapshots (``Log.segments`` is a tuple copy); anything that changes
under the cleaner (retention, DeleteRecords, truncation, deletion of the log)
makes the swap refuse, and the pass is abandoned without effect.

File format: ``cleaner-offset-checkpoint`` is a Kafka text checkpoint (see
:mod:`.checkpoint`) of each compacted partition's first dirty offset.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from google_crc32c import value as crc32c

from moldau.records import (
    ATTRIBUTES_OFFSET,
    BATCH_OVERHEAD,
    COMPRESSION_CODEC_MASK,
    CONTROL_FLAG_MASK,
    CRC_OFFSET,
    DELETE_HORIZON_FLAG_MASK,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_FLAG_MASK,
    Compression,
    CorruptRecordError,
    append_varint,
    compress,
    decode_varint,
    decompress,
    iter_batches,
)
from moldau.storage.checkpoint import OffsetCheckpointFile, fsync_dir
from moldau.storage.cleaner_offset_map import OffsetMap
from moldau.storage.config import LONG_MAX
from moldau.storage.errors import CorruptCheckpointError
from moldau.storage.log import SWAP_SUFFIX, Log
from moldau.storage.segment import LogSegment
from moldau.storage.txn_index import AbortedTxn

if TYPE_CHECKING:
    import asyncio

    from moldau.storage.log_manager import LogManager

__all__ = [
    "CLEANED_SUFFIX",
    "CLEANER_CHECKPOINT",
    "Cleaner",
    "CleanerConfig",
    "CleanerStats",
    "CleaningAbortedError",
    "LogCleaner",
    "LogToClean",
    "group_segments_by_size",
]

_log = logging.getLogger(__name__)

CLEANED_SUFFIX = ".cleaned"
CLEANER_CHECKPOINT = "cleaner-offset-checkpoint"

_T = TypeVar("_T")
_HEADER = struct.Struct(">qiibIhiqqqhii")
_unpack_header = _HEADER.unpack_from
_pack_header = _HEADER.pack_into
_PRODUCER_ID = struct.Struct(">q")
_PRODUCER_ID_OFFSET = 43
_MIN_RECORD_BODY = 6


class CleaningAbortedError(Exception):
    """The pass was abandoned (shutdown, or the log changed under the cleaner)."""


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """Broker-level cleaner settings, Kafka's ``log.cleaner.*`` keys and defaults."""

    enable: bool = True
    threads: int = 1
    #: ``log.cleaner.dedupe.buffer.size``: offset map memory shared by all threads.
    dedupe_buffer_size: int = 134217728
    #: ``log.cleaner.io.buffer.size``: read and write buffer size (grows for big batches).
    io_buffer_size: int = 524288
    #: ``log.cleaner.io.buffer.load.factor``: how full an offset map may get.
    load_factor: float = 0.9
    #: ``log.cleaner.backoff.ms``: sleep when no log needs cleaning.
    backoff_ms: int = 15000

    KAFKA_NAMES: ClassVar[Mapping[str, str]] = {
        "log.cleaner.enable": "enable",
        "log.cleaner.threads": "threads",
        "log.cleaner.dedupe.buffer.size": "dedupe_buffer_size",
        "log.cleaner.io.buffer.size": "io_buffer_size",
        "log.cleaner.io.buffer.load.factor": "load_factor",
        "log.cleaner.backoff.ms": "backoff_ms",
    }

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> CleanerConfig:
        """Build from typed broker settings keyed by Kafka name (missing keys: defaults)."""
        kwargs = {
            name: values[key]
            for key, name in cls.KAFKA_NAMES.items()
            if key in values and values[key] is not None
        }
        return cls(**kwargs)


@dataclass(slots=True)
class CleanerStats:
    """What one pass did (Kafka's ``CleanerStats``)."""

    started: float = field(default_factory=time.monotonic)
    map_done: float = 0.0
    finished: float = 0.0
    map_bytes_read: int = 0
    map_messages_read: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    messages_read: int = 0
    messages_written: int = 0
    segments_cleaned: int = 0
    segments_written: int = 0
    map_utilization: float = 0.0

    @property
    def elapsed(self) -> float:
        """Seconds the pass took."""
        return max((self.finished or time.monotonic()) - self.started, 1e-9)

    @property
    def mb_per_second(self) -> float:
        """MB (10**6 bytes) of log read by the cleaning phase per second of the whole pass."""
        return self.bytes_read / 1e6 / self.elapsed


@dataclass(frozen=True, slots=True)
class LogToClean:
    """A candidate log and the range it could be cleaned over (Kafka's ``LogToClean``)."""

    key: tuple[str, int]
    log: Log
    #: Inactive segments with a base below :attr:`first_uncleanable_offset`, oldest first.
    segments: tuple[LogSegment, ...]
    first_dirty_offset: int
    first_uncleanable_offset: int
    clean_bytes: int
    cleanable_bytes: int
    #: True when ``max.compaction.lag.ms`` says the dirty part must be cleaned now.
    needs_compaction_now: bool = False
    #: True when tombstones kept earlier have passed their delete horizon.
    tombstones_due: bool = False

    @property
    def cleanable_ratio(self) -> float:
        """Dirty bytes over all bytes of the cleanable range."""
        total = self.clean_bytes + self.cleanable_bytes
        return self.cleanable_bytes / total if total else 0.0


@dataclass(slots=True)
class _Retained:
    """The output of filtering one chunk of batches."""

    data: bytearray = field(default_factory=bytearray)
    messages: int = 0


def group_segments_by_size(
    segments: Sequence[LogSegment], max_size: int, max_index_size: int, first_uncleanable: int
) -> list[list[LogSegment]]:
    """Kafka's ``groupSegmentsBySize``: runs of segments that fit one new segment.

    A group's log bytes stay within ``max_size`` (``segment.bytes``), its index
    bytes within ``max_index_size`` (``segment.index.bytes``), and its offsets
    within 2**31 of its first base offset (relative offsets are int32).
    """
    groups: list[list[LogSegment]] = []
    i = 0
    n = len(segments)
    while i < n:
        group = [segments[i]]
        log_size = segments[i].size
        index_size = segments[i].offset_index.entries * 8
        time_size = segments[i].time_index.entries * 12
        i += 1
        while i < n:
            candidate = segments[i]
            last = segments[i + 1].base_offset - 1 if i + 1 < n else first_uncleanable - 1
            if (
                log_size + candidate.size > max_size
                or index_size + candidate.offset_index.entries * 8 > max_index_size
                or time_size + candidate.time_index.entries * 12 > max_index_size
                or (candidate.size > 0 and last - group[0].base_offset > 2**31 - 1)
            ):
                break
            group.append(candidate)
            log_size += candidate.size
            index_size += candidate.offset_index.entries * 8
            time_size += candidate.time_index.entries * 12
            i += 1
        groups.append(group)
    return groups


def _chunks(
    fd: int, start: int, end: int, buffer_size: int
) -> Iterator[tuple[memoryview, int, int]]:
    """Yield ``(chunk, chunk position, bytes of whole batches)`` over ``[start, end)``.

    Each chunk holds whole batches from its start (a larger read is made when a
    single batch does not fit ``buffer_size``, like Kafka's growing buffers). A torn
    or impossible batch ends the walk with CorruptRecordError: the segment is
    trusted, so that is a bug or a disk fault, and the pass must not continue.
    """
    pos = start
    size = buffer_size
    while pos < end:
        data = os.pread(fd, min(size, end - pos), pos)
        if not data:
            raise CorruptRecordError(f"segment ended at {pos}, before its size {end}")
        chunk = memoryview(data)
        consumed = 0
        for view in iter_batches(chunk, allow_partial_tail=True):
            consumed = view.position + view.size
        if consumed == 0:
            if len(chunk) < LOG_OVERHEAD:
                raise CorruptRecordError(f"torn batch header at {pos}")
            needed = LOG_OVERHEAD + int.from_bytes(chunk[8:12], "big", signed=True)
            if needed <= len(chunk) or pos + needed > end:
                raise CorruptRecordError(f"impossible batch of {needed} bytes at {pos}")
            size = needed
            continue
        yield chunk, pos, consumed
        pos += consumed
        size = buffer_size


class _AbortedTracker:
    """Which transactional batches are aborted data, read in offset order (Kafka's
    ``CleanedTransactionMetadata``): an aborted transaction becomes current for its
    producer when the reading reaches its first offset and ends at its marker."""

    __slots__ = ("_ongoing", "_pending", "_next", "seen")

    def __init__(self, aborted: Sequence[AbortedTxn]) -> None:
        self._pending = sorted(aborted, key=lambda a: a.first_offset)
        self._next = 0
        #: producer id -> marker offset of its current aborted transaction
        self._ongoing: dict[int, int] = {}
        #: producers whose transactional data was read since their last marker
        self.seen: set[int] = set()

    def is_aborted(self, producer_id: int, base_offset: int) -> bool:
        pending = self._pending
        while self._next < len(pending) and pending[self._next].first_offset <= base_offset:
            entry = pending[self._next]
            self._ongoing[entry.producer_id] = entry.last_offset
            self._next += 1
        marker = self._ongoing.get(producer_id)
        return marker is not None and base_offset < marker

    def on_data(self, producer_id: int, base_offset: int) -> bool:
        """A transactional data batch; True when it is aborted data."""
        self.seen.add(producer_id)
        return self.is_aborted(producer_id, base_offset)

    def on_marker(self, producer_id: int, offset: int) -> tuple[bool, bool]:
        """A control batch: (whether no data of its transaction was read in this pass,
        whether it ends an aborted transaction)."""
        self.is_aborted(producer_id, offset)
        aborted = self._ongoing.get(producer_id) == offset
        if aborted:
            del self._ongoing[producer_id]
        empty = producer_id not in self.seen
        self.seen.discard(producer_id)
        return empty, aborted


class Cleaner:
    """Cleans one log at a time with its own offset map and buffers (one per thread)."""

    def __init__(
        self,
        offset_map: OffsetMap,
        io_buffer_size: int,
        *,
        check_done: Callable[[], None] = lambda: None,
        run_on_owner: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        self.offset_map = offset_map
        self.io_buffer_size = max(io_buffer_size, BATCH_OVERHEAD)
        self._check_done = check_done
        self._run_on_owner = run_on_owner or (lambda fn: fn())

    # -- the pass -----------------------------------------------------------------------

    def clean(self, target: LogToClean, now_ms: int) -> tuple[int, CleanerStats, int | None]:
        """Clean ``target``; returns (new first dirty offset, stats, next delete horizon).

        The next delete horizon is the earliest horizon of a tombstone kept, or
        None. Raises CleaningAbortedError when the log changed under the pass; the
        log is then as it was (cleaned files are dropped).
        """
        stats = CleanerStats()
        log = target.log
        config = log.config
        offset_map = self.offset_map
        self._build_offset_map(target, stats)
        offset_map.update_latest_offset(target.first_dirty_offset - 1)
        end_offset = offset_map.latest_offset + 1
        stats.map_done = time.monotonic()
        stats.map_utilization = offset_map.utilization
        to_clean = [s for s in target.segments if s.base_offset < end_offset]
        last_batches = self._last_batches_of_producers(to_clean)
        groups = group_segments_by_size(
            to_clean,
            config.segment_bytes,
            config.segment_index_bytes,
            target.first_uncleanable_offset,
        )
        horizon: int | None = None
        for group in groups:
            group_horizon = self._clean_segments(
                log, group, now_ms, last_batches, target.first_uncleanable_offset, stats
            )
            if group_horizon is not None:
                horizon = group_horizon if horizon is None else min(horizon, group_horizon)
        stats.finished = time.monotonic()
        return end_offset, stats, horizon

    # -- phase 1: the offset map ----------------------------------------------------------

    def _build_offset_map(self, target: LogToClean, stats: CleanerStats) -> None:
        offset_map = self.offset_map
        offset_map.clear()
        start = target.first_dirty_offset
        segments = target.segments
        tracker = _AbortedTracker(target.log.aborted.collect(start, target.first_uncleanable_offset, from_thread=True))
        for i, segment in enumerate(segments):
            following = (
                segments[i + 1].base_offset
                if i + 1 < len(segments)
                else target.first_uncleanable_offset
            )
            if following <= start:
                continue
            if self._map_segment(segment, start, following, stats, tracker):
                return

    def _map_segment(
        self,
        segment: LogSegment,
        start: int,
        following: int,
        stats: CleanerStats,
        tracker: _AbortedTracker,
    ) -> bool:
        """Add a segment's keys to the map; True when the map filled up."""
        offset_map = self.offset_map
        capacity = offset_map.capacity
        read = decode_varint
        position = segment.offset_index.lookup(start)[1] if segment.base_offset < start else 0
        with self._open(segment) as fd:
            for chunk, _, consumed in _chunks(fd, position, segment.size, self.io_buffer_size):
                self._check_done()
                stats.map_bytes_read += consumed
                pos = 0
                while pos < consumed:
                    (
                        base_offset,
                        length,
                        _,
                        _,
                        _,
                        attributes,
                        last_delta,
                        _,
                        _,
                        producer_id,
                        _,
                        _,
                        count,
                    ) = _unpack_header(chunk, pos)
                    size = LOG_OVERHEAD + length
                    last_offset = base_offset + last_delta
                    skip = False
                    if attributes & CONTROL_FLAG_MASK:
                        tracker.on_marker(producer_id, base_offset)
                        skip = True
                    elif attributes & TRANSACTIONAL_FLAG_MASK:
                        skip = tracker.on_data(producer_id, base_offset)  # aborted: not mapped
                    if last_offset >= start and not skip:
                        data = _payload(chunk[pos : pos + size], attributes)
                        p = 0
                        end = len(data)
                        for _ in range(count):
                            rec_len, p = read(data, p)
                            rec_end = p + rec_len
                            if rec_len < _MIN_RECORD_BODY or rec_end > end:
                                raise CorruptRecordError("impossible record length")
                            _, q = read(data, p + 1)  # timestamp delta
                            offset_delta, q = read(data, q)
                            key_len, q = read(data, q)
                            offset = base_offset + offset_delta
                            if key_len >= 0 and offset >= start:
                                if offset_map.size >= capacity:
                                    return True
                                offset_map.put(data[q : q + key_len], offset)
                            stats.map_messages_read += 1
                            p = rec_end
                    if last_offset >= start:
                        offset_map.update_latest_offset(last_offset)
                    pos += size
        offset_map.update_latest_offset(following - 1)
        return False

    # -- producer state -------------------------------------------------------------------

    def _last_batches_of_producers(self, segments: Sequence[LogSegment]) -> dict[int, int]:
        """Producer id -> last offset of its last data batch in ``segments`` (headers only)."""
        last: dict[int, int] = {}
        for segment in segments:
            with self._open(segment) as fd:
                for chunk, _, consumed in _chunks(fd, 0, segment.size, self.io_buffer_size):
                    self._check_done()
                    pos = 0
                    while pos < consumed:
                        base, length, _, _, _, attributes, delta = _unpack_header(chunk, pos)[:7]
                        producer_id = _PRODUCER_ID.unpack_from(chunk, pos + _PRODUCER_ID_OFFSET)[0]
                        if producer_id >= 0 and not attributes & CONTROL_FLAG_MASK:
                            last[producer_id] = base + delta
                        pos += LOG_OVERHEAD + length
        return last

    # -- phase 2: cleaning a group into one segment ----------------------------------------

    def _clean_segments(
        self,
        log: Log,
        group: list[LogSegment],
        now_ms: int,
        last_batches: Mapping[int, int],
        round_end: int,
        stats: CleanerStats,
    ) -> int | None:
        base = group[0].base_offset
        config = log.config
        for path in LogSegment.paths(log.dir, base, CLEANED_SUFFIX):
            path.unlink(missing_ok=True)
        cleaned = LogSegment.create(
            log.dir,
            base,
            cache=_cache_of(log),
            index_interval_bytes=config.index_interval_bytes,
            max_index_size=config.segment_index_bytes,
            now_ms=now_ms,
            suffix=CLEANED_SUFFIX,
        )
        horizon: int | None = None
        swapped = False
        tracker = _AbortedTracker(log.aborted.collect(base, round_end, from_thread=True))
        retained_aborts: set[int] = set()
        try:
            for segment in group:
                with self._open(segment) as fd:
                    for chunk, _, consumed in _chunks(fd, 0, segment.size, self.io_buffer_size):
                        self._check_done()
                        stats.bytes_read += consumed
                        out = _Retained()
                        chunk_horizon = self._filter_chunk(
                            chunk[:consumed],
                            out,
                            now_ms,
                            config.delete_retention_ms,
                            last_batches,
                            round_end,
                            stats,
                            tracker,
                            retained_aborts,
                        )
                        if chunk_horizon is not None:
                            horizon = (
                                chunk_horizon if horizon is None else min(horizon, chunk_horizon)
                            )
                        if out.data:
                            cleaned.append(out.data, list(iter_batches(out.data)), now_ms=now_ms)
                            stats.bytes_written += len(out.data)
                            stats.messages_written += out.messages
            cleaned.on_become_inactive()
            cleaned.flush()
            cleaned.change_suffix(CLEANED_SUFFIX, SWAP_SUFFIX)
            fsync_dir(log.dir)
            self._check_done()
            swapped = bool(
                self._run_on_owner(lambda: log.replace_segments(cleaned, group, retained_aborts))
            )
            if not swapped:
                raise CleaningAbortedError(f"log {log.dir.name} changed during cleaning")
            fsync_dir(log.dir)
        finally:
            if not swapped:
                cleaned.delete()
        stats.segments_cleaned += len(group)
        stats.segments_written += 1
        return horizon

    def _filter_chunk(
        self,
        chunk: memoryview,
        out: _Retained,
        now_ms: int,
        delete_retention_ms: int,
        last_batches: Mapping[int, int],
        round_end: int,
        stats: CleanerStats,
        tracker: _AbortedTracker,
        retained_aborts: set[int],
    ) -> int | None:
        """Append the retained form of each batch in ``chunk`` to ``out``.

        Returns the earliest delete horizon of the tombstones and markers kept, or
        None. Abort markers kept are added to ``retained_aborts`` (their aborted-index
        entries stay).
        """
        offset_map = self.offset_map
        latest = offset_map.latest_offset
        get = offset_map.get
        read = decode_varint
        horizon: int | None = None
        pos = 0
        end_of_chunk = len(chunk)
        while pos < end_of_chunk:
            header = _unpack_header(chunk, pos)
            (
                base_offset,
                length,
                _epoch,
                _magic,
                _crc,
                attributes,
                last_delta,
                base_timestamp,
                max_timestamp,
                producer_id,
                _producer_epoch,
                _base_sequence,
                count,
            ) = header
            size = LOG_OVERHEAD + length
            batch = chunk[pos : pos + size]
            pos += size
            last_offset = base_offset + last_delta
            has_horizon = bool(attributes & DELETE_HORIZON_FLAG_MASK)
            horizon_passed = has_horizon and now_ms >= base_timestamp
            if attributes & CONTROL_FLAG_MASK:
                stats.messages_read += count
                empty, ends_abort = tracker.on_marker(producer_id, base_offset)
                if empty and horizon_passed:
                    continue  # no data of its transaction is left: the marker goes
                if empty and not has_horizon and count:
                    data = _payload(batch, attributes)
                    kept_all = _records_of(data, count, base_timestamp)
                    batch_horizon = now_ms + delete_retention_ms
                    out.data += _rebuild_batch(header, data, kept_all, batch_horizon, max_timestamp)
                else:
                    out.data += batch
                    batch_horizon = base_timestamp if empty and has_horizon else None
                if batch_horizon is not None:
                    horizon = batch_horizon if horizon is None else min(horizon, batch_horizon)
                out.messages += count
                if ends_abort:
                    retained_aborts.add(base_offset)
                continue
            if count == 0:
                out.data += batch
                continue
            if attributes & TRANSACTIONAL_FLAG_MASK and tracker.on_data(producer_id, base_offset):
                stats.messages_read += count  # aborted data: removed
                if last_batches.get(producer_id) == last_offset or last_offset + 1 == round_end:
                    out.data += _empty_batch(header)
                continue
            data = _payload(batch, attributes)
            data_end = len(data)
            kept: list[tuple[int, int, int, int]] = []  # record start, ts end, end, ts
            kept_tombstone = False
            max_kept_ts = -1
            p = 0
            for _ in range(count):
                record_start = p
                rec_len, p = read(data, p)
                rec_end = p + rec_len
                if rec_len < _MIN_RECORD_BODY or rec_end > data_end:
                    raise CorruptRecordError("impossible record length")
                ts_delta, ts_end = read(data, p + 1)
                offset_delta, q = read(data, ts_end)
                key_len, q = read(data, q)
                offset = base_offset + offset_delta
                if key_len >= 0:
                    key_end = q + key_len
                    value_len, _ = read(data, key_end)
                else:
                    key_end = q
                    value_len = 0
                tombstone = value_len < 0
                if offset > latest:
                    keep = True
                elif key_len < 0:
                    keep = False  # Kafka drops keyless records on compacted logs
                else:
                    keep = offset >= get(data[q:key_end]) and not (tombstone and horizon_passed)
                if keep:
                    timestamp = base_timestamp + ts_delta
                    kept.append((record_start, ts_end, rec_end, timestamp))
                    kept_tombstone = kept_tombstone or tombstone
                    if timestamp > max_kept_ts:
                        max_kept_ts = timestamp
                p = rec_end
            stats.messages_read += count
            if kept:
                need_horizon = kept_tombstone and not has_horizon
                if len(kept) == count and not need_horizon:
                    out.data += batch
                else:
                    new_base_ts = now_ms + delete_retention_ms if need_horizon else None
                    out.data += _rebuild_batch(header, data, kept, new_base_ts, max_kept_ts)
                out.messages += len(kept)
                if kept_tombstone:
                    batch_horizon = now_ms + delete_retention_ms if need_horizon else base_timestamp
                    horizon = batch_horizon if horizon is None else min(horizon, batch_horizon)
            elif (
                producer_id >= 0 and last_batches.get(producer_id) == last_offset
            ) or last_offset + 1 == round_end:
                out.data += _empty_batch(header)
        return horizon

    @contextlib.contextmanager
    def _open(self, segment: LogSegment) -> Iterator[int]:
        """A private read-only descriptor on a segment's file (the cache is the loop's)."""
        try:
            fd = os.open(segment.log_path, os.O_RDONLY)
        except FileNotFoundError:
            raise CleaningAbortedError(f"segment {segment.log_path} is gone") from None
        try:
            yield fd
        finally:
            os.close(fd)


def _records_of(data: bytes | memoryview, count: int, base_timestamp: int) -> list[tuple[int, int, int, int]]:
    """Every record of a batch payload as ``_rebuild_batch`` takes them."""
    out = []
    p = 0
    for _ in range(count):
        start = p
        rec_len, p = decode_varint(data, p)
        ts_delta, ts_end = decode_varint(data, p + 1)
        out.append((start, ts_end, p + rec_len, base_timestamp + ts_delta))
        p += rec_len
    return out


def _cache_of(log: Log) -> Any:
    return log._cache  # noqa: SLF001 - the cleaned segment shares its log's file cache


def _payload(batch: memoryview, attributes: int) -> bytes | memoryview:
    codec = attributes & COMPRESSION_CODEC_MASK
    records = batch[BATCH_OVERHEAD:]
    if codec == Compression.NONE:
        return records
    return decompress(Compression(codec), records)


def _finish(out: bytearray) -> bytes:
    crc = crc32c(bytes(out[ATTRIBUTES_OFFSET:]))
    struct.pack_into(">I", out, CRC_OFFSET, crc)
    return bytes(out)


def _rebuild_batch(
    header: tuple[int, ...],
    data: bytes | memoryview,
    kept: list[tuple[int, int, int, int]],
    new_base_timestamp: int | None,
    max_kept_timestamp: int,
) -> bytes:
    """A batch of the ``kept`` records of ``data``, header fields preserved.

    Record bytes are copied as they are unless a new base timestamp (a delete
    horizon) is set, in which case each record's timestamp delta is re-encoded
    against it, so absolute record timestamps stay the same.
    """
    (
        base_offset,
        _length,
        epoch,
        magic,
        _crc,
        attributes,
        last_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        _count,
    ) = header
    body = bytearray()
    if new_base_timestamp is None:
        for start, _ts_end, end, _ts in kept:
            body += data[start:end]
    else:
        base_timestamp = new_base_timestamp
        attributes |= DELETE_HORIZON_FLAG_MASK
        for _start, ts_end, end, timestamp in kept:
            inner = bytearray(b"\x00")
            append_varint(inner, timestamp - new_base_timestamp)
            inner += data[ts_end:end]
            append_varint(body, len(inner))
            body += inner
    codec = attributes & COMPRESSION_CODEC_MASK
    payload: bytes | bytearray = body
    if codec != Compression.NONE:
        payload = compress(Compression(codec), body)
    if not attributes & TIMESTAMP_TYPE_MASK:
        max_timestamp = max_kept_timestamp
    out = bytearray(BATCH_OVERHEAD + len(payload))
    _pack_header(
        out,
        0,
        base_offset,
        MIN_BATCH_LENGTH + len(payload),
        epoch,
        magic,
        0,
        attributes,
        last_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(kept),
    )
    out[BATCH_OVERHEAD:] = payload
    return _finish(out)


def _empty_batch(header: tuple[int, ...]) -> bytes:
    """Kafka's ``writeEmptyHeader``: the batch's offsets and producer fields, no records."""
    (
        base_offset,
        _length,
        epoch,
        magic,
        _crc,
        attributes,
        last_delta,
        _base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        _count,
    ) = header
    attributes &= TIMESTAMP_TYPE_MASK | TRANSACTIONAL_FLAG_MASK | CONTROL_FLAG_MASK
    out = bytearray(BATCH_OVERHEAD)
    _pack_header(
        out,
        0,
        base_offset,
        MIN_BATCH_LENGTH,
        epoch,
        magic,
        0,
        attributes,
        last_delta,
        max_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        0,
    )
    return _finish(out)


def _first_batch_timestamp(segment: LogSegment) -> int:
    """The max timestamp of a segment's first batch (Kafka's ``getFirstBatchTimestamp``)."""
    try:
        fd = os.open(segment.log_path, os.O_RDONLY)
    except FileNotFoundError:
        return -1
    try:
        data = os.pread(fd, BATCH_OVERHEAD, 0)
    finally:
        os.close(fd)
    if len(data) < BATCH_OVERHEAD:
        return -1
    return int(_unpack_header(data, 0)[8])


class LogCleaner:
    """Runs :class:`Cleaner` passes over a :class:`LogManager`'s compacted logs.

    See the module docstring. ``loop``: the event loop owning the logs (swaps run
    on it); None when the calling thread owns them (tests, tools).
    ``upper_bound``: an extra limit on cleanable offsets per partition (the high
    watermark), None for none.
    """

    def __init__(
        self,
        log_manager: LogManager,
        config: CleanerConfig | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        upper_bound: Callable[[str, int], int | None] | None = None,
        time_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.log_manager = log_manager
        self.config = config or CleanerConfig()
        self._loop = loop
        self._upper_bound = upper_bound
        self._time_ms = time_ms
        self._checkpoint = OffsetCheckpointFile(Path(log_manager.data_dir) / CLEANER_CHECKPOINT)
        self._checkpoint_lock = threading.Lock()
        self._lock = threading.Lock()
        self._first_dirty: dict[tuple[str, int], int] = self._read_checkpoint()
        self._horizons: dict[tuple[str, int], int] = {}
        self._in_progress: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        threads = max(self.config.threads, 1)
        memory = self.config.dedupe_buffer_size // threads
        self._cleaners = [
            Cleaner(
                OffsetMap(memory, self.config.load_factor),
                self.config.io_buffer_size,
                check_done=self._check_done,
                run_on_owner=self._run_on_owner,
            )
            for _ in range(threads)
        ]
        #: Statistics of the last pass of each log, for tests, metrics and logs.
        self.last_stats: dict[tuple[str, int], CleanerStats] = {}
        #: Total passes completed.
        self.passes = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the cleaner threads (nothing when ``log.cleaner.enable`` is false)."""
        if not self.config.enable or self.config.threads < 1 or self._threads:
            return
        for i, cleaner in enumerate(self._cleaners):
            thread = threading.Thread(
                target=self._run, args=(cleaner,), name=f"moldau-log-cleaner-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def shutdown(self, timeout: float | None = 30.0) -> None:
        """Stop the threads (a pass in progress is abandoned at its next check)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _run(self, cleaner: Cleaner) -> None:
        backoff = self.config.backoff_ms / 1000
        while not self._stop.is_set():
            try:
                cleaned = self.clean_once(cleaner)
            except Exception:
                _log.exception("log cleaner pass failed")
                cleaned = False
            if not cleaned:
                self._stop.wait(backoff)

    def _check_done(self) -> None:
        if self._stop.is_set():
            raise CleaningAbortedError("the log cleaner is shutting down")

    def _run_on_owner(self, fn: Callable[[], _T]) -> _T:
        loop = self._loop
        if loop is None:
            return fn()
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def call() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed back to the cleaner thread
                future.set_exception(exc)

        try:
            loop.call_soon_threadsafe(call)
        except RuntimeError as exc:  # the loop is closed
            raise CleaningAbortedError("the event loop is gone") from exc
        while True:
            try:
                return future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if self._stop.is_set() and future.cancel():
                    raise CleaningAbortedError("the log cleaner is shutting down") from None

    # -- choosing a log -------------------------------------------------------------------

    def _read_checkpoint(self) -> dict[tuple[str, int], int]:
        try:
            return self._checkpoint.read()
        except (CorruptCheckpointError, OSError, UnicodeDecodeError) as exc:
            _log.warning("ignoring unreadable %s: %s", self._checkpoint.path, exc)
            return {}

    def _write_checkpoint(self) -> None:
        live = {(topic, partition) for topic, partition, _ in self.log_manager.logs()}
        with self._checkpoint_lock:
            entries = {k: v for k, v in self._first_dirty.items() if k in live}
            self._checkpoint.write(entries)

    def first_dirty_offset(self, topic: str, partition: int) -> int | None:
        """The checkpointed first dirty offset of a partition (None: never cleaned)."""
        return self._first_dirty.get((topic, partition))

    def log_to_clean(self, topic: str, partition: int, log: Log, now_ms: int) -> LogToClean:
        """The cleanable range of a log (Kafka's ``cleanableOffsets`` and ``LogToClean``)."""
        key = (topic, partition)
        segments = log.segments
        start = log.log_start_offset
        first_dirty = self._first_dirty.get(key, start)
        if first_dirty < start or first_dirty > log.log_end_offset:
            first_dirty = start
        active = segments[-1]
        uncleanable = active.base_offset
        if self._upper_bound is not None:
            bound = self._upper_bound(topic, partition)
            if bound is not None:
                uncleanable = min(uncleanable, bound)
        # nothing of an undecided (or not yet replicated) transaction is cleaned; a read
        # from this thread may be stale by an append, never torn (see Log)
        unstable = log.first_unstable_offset_from_thread()
        if unstable is not None:
            uncleanable = min(uncleanable, unstable)
        config = log.config
        if config.min_compaction_lag_ms > 0:
            for i, segment in enumerate(segments[:-1]):
                following = segments[i + 1].base_offset
                if following <= first_dirty:
                    continue
                if segment.largest_timestamp > now_ms - config.min_compaction_lag_ms:
                    uncleanable = min(uncleanable, segment.base_offset)
                    break
        uncleanable = max(uncleanable, first_dirty)
        inactive = tuple(s for s in segments[:-1] if s.base_offset < uncleanable)
        clean_bytes = 0
        dirty_bytes = 0
        first_dirty_segment: LogSegment | None = None
        for i, segment in enumerate(inactive):
            following = segments[i + 1].base_offset if i + 1 < len(segments) else log.log_end_offset
            if following <= first_dirty:
                clean_bytes += segment.size
            else:
                dirty_bytes += segment.size
                if first_dirty_segment is None:
                    first_dirty_segment = segment
        needs_now = False
        if (
            config.max_compaction_lag_ms < LONG_MAX
            and first_dirty_segment is not None
            and dirty_bytes > 0
        ):
            first_ts = _first_batch_timestamp(first_dirty_segment)
            needs_now = first_ts >= 0 and now_ms - first_ts > config.max_compaction_lag_ms
        horizon = self._horizons.get(key)
        return LogToClean(
            key=key,
            log=log,
            segments=inactive,
            first_dirty_offset=first_dirty,
            first_uncleanable_offset=uncleanable,
            clean_bytes=clean_bytes,
            cleanable_bytes=dirty_bytes,
            needs_compaction_now=needs_now,
            tombstones_due=horizon is not None and now_ms >= horizon and bool(inactive),
        )

    def grab_filthiest_log(self, now_ms: int) -> LogToClean | None:
        """The compacted log most in need of cleaning, marked in progress; None if none."""
        candidates: list[LogToClean] = []
        for topic, partition, log in list(self.log_manager.logs()):
            if log.closed or not log.config.compact:
                continue
            with self._lock:
                if (topic, partition) in self._in_progress:
                    continue
            try:
                candidates.append(self.log_to_clean(topic, partition, log, now_ms))
            except (FileNotFoundError, IndexError):
                continue  # the log is being deleted or changed
        ready = [
            c
            for c in candidates
            if c.cleanable_bytes > 0
            and (
                c.needs_compaction_now or c.cleanable_ratio > c.log.config.min_cleanable_dirty_ratio
            )
        ]
        if not ready:
            ready = [c for c in candidates if c.tombstones_due]
        if not ready:
            return None
        chosen = max(ready, key=lambda c: (c.needs_compaction_now, c.cleanable_ratio))
        with self._lock:
            if chosen.key in self._in_progress:
                return None
            self._in_progress.add(chosen.key)
        return chosen

    # -- cleaning -------------------------------------------------------------------------

    def clean_once(self, cleaner: Cleaner | None = None) -> bool:
        """Clean the filthiest log once; False when no log needed cleaning."""
        cleaner = cleaner or self._cleaners[0]
        now_ms = self._time_ms()
        target = self.grab_filthiest_log(now_ms)
        if target is None:
            return False
        try:
            end_offset, stats, horizon = cleaner.clean(target, now_ms)
        except CleaningAbortedError as exc:
            _log.info("cleaning of %s-%d abandoned: %s", *target.key, exc)
            return not self._stop.is_set()
        finally:
            with self._lock:
                self._in_progress.discard(target.key)
        with self._lock:
            self._first_dirty[target.key] = end_offset
            if horizon is None:
                self._horizons.pop(target.key, None)
            else:
                self._horizons[target.key] = horizon
        self.last_stats[target.key] = stats
        self.passes += 1
        try:
            self._write_checkpoint()
        except OSError:
            _log.exception("writing %s failed", self._checkpoint.path)
        _log.info(
            "cleaned %s-%d up to offset %d: %d segments into %d, %.1f MB read, %.1f MB "
            "written, %d of %d messages kept, map %.0f%% full, %.2f s (%.1f MB/s)",
            *target.key,
            end_offset,
            stats.segments_cleaned,
            stats.segments_written,
            stats.bytes_read / 1e6,
            stats.bytes_written / 1e6,
            stats.messages_written,
            stats.messages_read,
            stats.map_utilization * 100,
            stats.elapsed,
            stats.mb_per_second,
        )
        return True

    def clean_until_idle(self, max_passes: int = 1000) -> int:
        """Run passes until no log qualifies (tests, tools); returns the number run."""
        done = 0
        while done < max_passes and self.clean_once():
            done += 1
        return done
