"""One partition's log: a directory of segments with appends, reads, flushes and recovery.

Directory format: ``<data_dir>/<topic>-<partition>/`` holds the segments
(``<base offset, 20 digits>.log``, ``.index``, ``.timeindex``; see
:mod:`.segment`, :mod:`.offset_index`, :mod:`.time_index`). Segment base offsets
increase; each segment holds the offsets from its base up to the next segment's
base; only the last one, the *active* segment, takes appends. Files ending in
``.tmp``, ``.deleted`` or ``.cleaned`` are leftovers of interrupted operations
and removed on open; index files without a ``.log`` likewise. ``.swap`` files
(a compaction interrupted during its swap) are completed first, see
:func:`complete_swaps`; ``.txnindex`` (aborted transactions, :mod:`.txn_index`) and
``.snapshot`` (producer state, :mod:`.txn_state`) files are the log's transaction
state, kept in step by :mod:`.log_txn`; other files (``partition.metadata``, ...) are
ignored.

Offsets and points (Kafka's names):

- ``log_start_offset``: first offset visible to readers (moved by DeleteRecords and
  retention; whole segments below it are deleted).
- ``log_end_offset``: the next offset to assign.
- ``recovery_point``: every offset below it is fsynced; after an unclean stop only
  segments from the one holding it onwards are scanned on open.

Opening (:meth:`Log.open`, Kafka's ``LogLoader``): after a clean shutdown no
segment is scanned except the unindexed tail of the active one (to find the log
end) and any segment whose indexes are missing or fail their sanity checks (they
are rebuilt). After an unclean stop every segment from the recovery point on is
validated batch by batch (CRC-32C included); the first invalid or torn batch is
cut off with everything after it, including later segments.

Thread-safety: one thread (the broker's event loop) owns a :class:`Log` and calls
everything except :meth:`Log.flush`, which may run on a worker thread at the same
time: it fsyncs a snapshot of the segment list, advances ``recovery_point`` under
a lock, and tolerates segments deleted under it. The producer-state snapshot of a
roll is taken (its bytes) on the owner thread and written, fsynced and renamed by
one shared worker thread (:data:`_SNAPSHOT_WRITER`), so a roll never waits for the
disk; a truncation meanwhile bumps the log's snapshot generation under
``_snapshot_lock``, and a write of an older generation is dropped instead of
renamed. :meth:`Log.flush` and a clean :meth:`Log.close` wait for the pending write. Reads of the simple properties
from other threads see consistent (if possibly stale) ints.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import re
import shutil
import threading
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moldau.log_throttle import ThrottledLog
from moldau.records import (
    BatchView,
    InvalidRecordError,
    RecordTooLargeError,
    assign_offsets,
    iter_batches,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_batches,
)
from moldau.records.validation import validate_records
from moldau.stats import FLUSH_TIMES
from moldau.storage import log_txn
from moldau.storage.checkpoint import fsync_dir
from moldau.storage.config import LogConfig
from moldau.storage.errors import KafkaStorageError, OffsetOutOfRangeError
from moldau.storage.file_cache import FileCache, FileSlice
from moldau.storage.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    parse_base_offset,
    walk_batches,
)
from moldau.storage.txn_index import TXN_INDEX_SUFFIX, AbortedTxn, AbortedTxnIndex
from moldau.storage.txn_state import ProducerTxnState

__all__ = ["AppendInfo", "Log", "LogReadInfo", "parse_topic_partition"]

_log = logging.getLogger(__name__)
# a full disk fails every produce request: say so, but not 31,000 times
_storage_error_log = ThrottledLog(_log, "failed appends (KAFKA_STORAGE_ERROR)", level=logging.ERROR)

#: writes producer snapshots for every log, in order, off the event loop
_SNAPSHOT_WRITER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="producer-snapshots")
_LEFTOVER_SUFFIXES = (".tmp", ".deleted", ".cleaned")
_DIR_NAME = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)-(?P<partition>\d+)$")


def parse_topic_partition(name: str) -> tuple[str, int] | None:
    """``("orders", 3)`` for a directory named ``orders-3``; None for anything else."""
    match = _DIR_NAME.match(name)
    if match is None:
        return None
    return match["topic"], int(match["partition"])


#: Suffix of a cleaned segment's files once complete and fsynced (Kafka's ``.swap``).
SWAP_SUFFIX = ".swap"


def complete_swaps(directory: Path) -> list[int]:
    """Finish the log cleaner's interrupted swaps in ``directory``; returns their bases.

    A ``<base>.log.swap`` file is a complete, fsynced cleaned segment that replaces
    every segment whose base offset lies in ``[base, its next offset)``: the
    cleaner renames ``.cleaned`` to ``.swap`` only after the fsync, and replaces
    the old segments only after that. Whatever step a crash interrupted, the old
    segments of that range (``.log`` and indexes, whether still in place or
    already renamed) are removed and the ``.swap`` file takes the ``.log`` name;
    its indexes are rebuilt on open. ``.index.swap``/``.timeindex.swap`` files are
    dropped for the same reason. ``.cleaned`` files (a cleaning that never reached
    the swap) are removed by the caller with the other leftovers.
    """
    names = os.listdir(directory)
    swaps = sorted(
        base
        for name in names
        if (base := parse_base_offset(name, LOG_SUFFIX + SWAP_SUFFIX)) is not None
    )
    for name in names:
        if name.endswith(
            (INDEX_SUFFIX + SWAP_SUFFIX, TIME_INDEX_SUFFIX + SWAP_SUFFIX, TXN_INDEX_SUFFIX + SWAP_SUFFIX)
        ):
            (directory / name).unlink(missing_ok=True)
    for base in swaps:
        swap_path = directory / (f"{base:020d}" + LOG_SUFFIX + SWAP_SUFFIX)
        with open(swap_path, "rb") as f:
            next_offset = base
            for header in walk_batches(f.fileno(), 0, os.fstat(f.fileno()).st_size):
                next_offset = header.last_offset + 1
        end = max(next_offset, base + 1)
        for name in os.listdir(directory):
            for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
                old = parse_base_offset(name, suffix)
                if old is not None and base <= old < end:
                    _log.info("removing segment file %s replaced by a cleaned segment", name)
                    (directory / name).unlink(missing_ok=True)
        os.rename(swap_path, directory / (f"{base:020d}" + LOG_SUFFIX))
        _log.info("completed the swap of cleaned segment %d in %s", base, directory)
    if swaps:
        fsync_dir(directory)
    return swaps


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AppendInfo:
    """What an append did (Kafka's ``LogAppendInfo``, the parts a produce answer needs)."""

    #: Offset of the first record appended (-1 for an empty append).
    first_offset: int
    #: Offset of the last record appended (-1 for an empty append).
    last_offset: int
    #: The broker's timestamp when the log uses LogAppendTime, else -1.
    log_append_time: int
    #: The log start offset after the append.
    log_start_offset: int
    #: Offsets spanned by the appended batches.
    record_count: int
    #: Largest timestamp in the appended batches (the append time under LogAppendTime).
    max_timestamp: int


@dataclass(frozen=True, slots=True)
class LogReadInfo:
    """The answer to :meth:`Log.read`: a slice of whole batches, or nothing."""

    #: Whole batches from one segment; None when there is nothing to return.
    slice: FileSlice | None
    #: Base offset of the first batch in :attr:`slice` (it may be below the fetch
    #: offset, as the batch holding it is returned whole); -1 when empty.
    first_batch_offset: int
    #: Log start and end offsets at the time of the read.
    log_start_offset: int
    log_end_offset: int


class Log:
    """One partition's segments (see module docstring for format and threading)."""

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        *,
        file_cache: FileCache,
        segments: list[LogSegment],
        log_start_offset: int,
        recovery_point: int,
        txn_state: ProducerTxnState | None = None,
        aborted: AbortedTxnIndex | None = None,
    ) -> None:
        if not segments:
            raise ValueError("a log needs at least one segment")
        self.dir = directory
        parsed = parse_topic_partition(directory.name)
        self.topic: str | None = parsed[0] if parsed else None
        self.partition: int | None = parsed[1] if parsed else None
        self._config = config
        self._cache = file_cache
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        end = segments[-1].next_offset
        assert end is not None, "the active segment's end must be known"
        self._log_end_offset = end
        self._log_start_offset = log_start_offset
        self._recovery_point = min(recovery_point, end)
        self._flush_lock = threading.Lock()
        self._state_lock = threading.Lock()
        # the producer snapshot being written by _SNAPSHOT_WRITER, and what makes it stale
        self._snapshot_lock = threading.Lock()
        self._snapshot_generation = 0
        self._snapshot_job: concurrent.futures.Future[None] | None = None
        self._snapshot_offset_written = -1  # the last one this log wrote (-1: none)
        #: Wall-clock ms of the last flush, for ``flush.ms``.
        self.last_flush_ms = _wall_ms()
        # Bumped when segment files are created, so a flush also fsyncs the directory.
        self._dir_changes = 1
        self._dir_changes_flushed = 0
        self._closed = False
        #: producer and transaction state of every batch in the log (:mod:`.txn_state`)
        self.txn_state = txn_state if txn_state is not None else ProducerTxnState()
        self.txn_state.end_offset = end
        #: the aborted transactions of the log's ``.txnindex`` files
        self.aborted = aborted if aborted is not None else AbortedTxnIndex(directory)

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        *,
        file_cache: FileCache,
        recovery_point: int,
        log_start_offset: int,
        clean_shutdown: bool,
        now_ms: int | None = None,
    ) -> Log:
        """Load (creating if needed) the log in ``directory``; recover it if not clean."""
        now = _wall_ms() if now_ms is None else now_ms
        directory.mkdir(parents=True, exist_ok=True)
        complete_swaps(directory)
        bases: list[int] = []
        index_files: list[tuple[int, Path]] = []
        for entry in os.scandir(directory):
            name = entry.name
            if name.endswith(_LEFTOVER_SUFFIXES):
                _log.info("removing leftover file %s", entry.path)
                Path(entry.path).unlink(missing_ok=True)
                continue
            if name.endswith(SWAP_SUFFIX):
                continue  # handled by complete_swaps above
            base = parse_base_offset(name)
            if base is not None:
                bases.append(base)
                continue
            for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
                base = parse_base_offset(name, suffix)
                if base is not None:
                    index_files.append((base, Path(entry.path)))
        bases.sort()
        known = set(bases)
        for base, path in index_files:
            if base not in known:
                _log.info("removing orphan index %s", path)
                path.unlink(missing_ok=True)

        segments: list[LogSegment] = []
        rebuild: set[int] = set()
        for base in bases:
            segment, ok = LogSegment.open(
                directory,
                base,
                cache=file_cache,
                index_interval_bytes=config.index_interval_bytes,
                max_index_size=config.segment_index_bytes,
            )
            segments.append(segment)
            if not ok:
                rebuild.add(base)
        # Indexes must stay below the next segment's base offset.
        for segment, following in zip(segments, segments[1:], strict=False):
            if (
                segment.offset_index.last_offset >= following.base_offset
                or segment.time_index.last_entry[1] >= following.base_offset
            ):
                rebuild.add(segment.base_offset)

        if clean_shutdown:
            for segment in segments[:-1]:
                if segment.base_offset in rebuild:
                    segment.recover(now)
            if segments:
                active = segments[-1]
                if active.base_offset in rebuild or not active.load_tail_state(now):
                    active.recover(now)
        else:
            first = max(bisect_right(bases, recovery_point) - 1, 0)
            for segment in segments[:first]:
                if segment.base_offset in rebuild:
                    segment.recover(now)
            for i in range(first, len(segments)):
                segment = segments[i]
                truncated = segment.recover(now)
                if truncated:
                    for later in segments[i + 1 :]:
                        _log.warning("deleting segment %s after a torn one", later.log_path)
                        later.delete()
                    del segments[i + 1 :]
                    break

        log_end = segments[-1].next_offset if segments else None
        if segments and log_end is not None and log_end < log_start_offset:
            _log.warning(
                "log end %d of %s is below its start offset %d; starting it afresh",
                log_end,
                directory,
                log_start_offset,
            )
            for segment in segments:
                segment.delete()
            segments = []
        if not segments:
            segments.append(
                LogSegment.create(
                    directory,
                    log_start_offset,
                    cache=file_cache,
                    index_interval_bytes=config.index_interval_bytes,
                    max_index_size=config.segment_index_bytes,
                    now_ms=now,
                )
            )
        end = segments[-1].next_offset
        assert end is not None
        start = max(log_start_offset, segments[0].base_offset)
        txn_state, aborted = log_txn.load(
            directory, segments, start, end, end if clean_shutdown else min(recovery_point, end)
        )
        log = cls(
            directory,
            config,
            file_cache=file_cache,
            segments=segments,
            log_start_offset=start,
            recovery_point=end if clean_shutdown else recovery_point,
            txn_state=txn_state,
            aborted=aborted,
        )
        return log

    # -- properties -------------------------------------------------------------------

    @property
    def config(self) -> LogConfig:
        """The log's configuration; assigning one applies it to future appends and rolls."""
        return self._config

    @config.setter
    def config(self, config: LogConfig) -> None:
        self._config = config
        for segment in self._segments:
            segment.index_interval_bytes = config.index_interval_bytes

    @property
    def log_start_offset(self) -> int:
        """First offset readers may fetch."""
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next appended record gets."""
        return self._log_end_offset

    @property
    def recovery_point(self) -> int:
        """Every offset below this is durable on disk."""
        return self._recovery_point

    @property
    def unflushed_messages(self) -> int:
        """Offsets appended since the last flush (Kafka's ``unflushedMessages``)."""
        return self._log_end_offset - self._recovery_point

    @property
    def size_in_bytes(self) -> int:
        """Total bytes of all segments."""
        return sum(segment.size for segment in self._segments)

    @property
    def segments(self) -> Sequence[LogSegment]:
        """The segments, oldest first (a copy; the last one is active)."""
        return tuple(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        """The segment taking appends."""
        return self._segments[-1]

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or :meth:`delete`."""
        return self._closed

    # -- appends ----------------------------------------------------------------------

    def append_as_leader(
        self,
        records: bytearray | memoryview,
        *,
        leader_epoch: int,
        now_ms: int,
        timestamp_bounds: tuple[int, int] | None = None,
        from_client: bool = True,
    ) -> AppendInfo:
        """Validate, number and append a producer's batches; patches ``records`` in place.

        Validation is Kafka's for client appends: batch headers and CRCs
        (:func:`validate_batches`), then every record of every batch
        (:func:`validate_records`: well-formed records, offset deltas in order, keys
        on compacted topics, record timestamps within ``timestamp_bounds`` when given,
        maxTimestamp corrected). Raises the :mod:`moldau.records`
        errors for bad batches (CorruptRecordError, InvalidRecordError and its
        RecordValidationError, RecordTooLargeError, UnsupportedCompressionError), and
        KafkaStorageError when the disk refuses the write; either way nothing is
        appended. ``from_client=False`` is the broker's own batch (a transaction
        marker, Kafka's coordinator origin): headers and CRC only, control batches
        allowed.
        """
        config = self._config
        info = validate_batches(records, max_batch_bytes=config.max_message_bytes, from_client=from_client)
        corrected = from_client and validate_records(
            records,
            compacted=config.compact,
            log_append_time=config.log_append_time,
            timestamp_bounds=timestamp_bounds,
            topic_partition=self.dir.name,
        ).max_timestamps_corrected
        if corrected:  # a batch's maxTimestamp was fixed: summarise the patched headers
            info = validate_batches(records, max_batch_bytes=config.max_message_bytes)
        if info.size > config.segment_bytes:
            raise RecordTooLargeError(
                f"{info.size} bytes of batches exceed segment.bytes {config.segment_bytes}"
            )
        first_offset = self._log_end_offset
        last_offset = assign_offsets(records, first_offset)
        set_partition_leader_epoch(records, leader_epoch)
        if config.log_append_time:
            set_log_append_time(records, now_ms)
            append_time = max_timestamp = now_ms
        else:
            append_time, max_timestamp = -1, info.max_timestamp
        self._append(records, list(iter_batches(records)), first_offset, last_offset, now_ms)
        return AppendInfo(
            first_offset=first_offset,
            last_offset=last_offset,
            log_append_time=append_time,
            log_start_offset=self._log_start_offset,
            record_count=info.record_count,
            max_timestamp=max_timestamp,
        )

    def append_as_follower(
        self, records: bytes | bytearray | memoryview, *, now_ms: int
    ) -> AppendInfo:
        """Append batches that already carry their offsets (replication), unchanged.

        The batches must be valid, their offsets increasing and at or above the log
        end (gaps are allowed: a compacted leader has them).
        """
        info = validate_batches(records, from_client=False)
        if info.batch_count == 0:
            return AppendInfo(-1, -1, -1, self._log_start_offset, 0, -1)
        if not info.offsets_monotonic:
            raise InvalidRecordError("out of order offsets in appended batches")
        if info.first_offset < self._log_end_offset:
            raise InvalidRecordError(
                f"batches start at offset {info.first_offset}, below the log end "
                f"{self._log_end_offset}"
            )
        self._append(
            records, list(iter_batches(records)), info.first_offset, info.last_offset, now_ms
        )
        return AppendInfo(
            first_offset=info.first_offset,
            last_offset=info.last_offset,
            log_append_time=-1,
            log_start_offset=self._log_start_offset,
            record_count=info.record_count,
            max_timestamp=info.max_timestamp,
        )

    def _append(
        self,
        records: bytes | bytearray | memoryview,
        batches: list[BatchView],
        first_offset: int,
        last_offset: int,
        now_ms: int,
    ) -> None:
        self._check_open()
        try:
            segment = self._maybe_roll(len(records), first_offset, last_offset, now_ms)
            segment.append(records, batches, now_ms=now_ms)
            log_txn.apply_batches(self.txn_state, self.aborted, batches, segment.base_offset)
        except (KafkaStorageError, OSError) as exc:
            # Kafka turns an IOException under an append into KAFKA_STORAGE_ERROR and
            # logs it; the client only sees the code, so the log is where the cause is
            _storage_error_log("error appending to %s, answering KAFKA_STORAGE_ERROR: %s", self.dir, exc)
            if isinstance(exc, KafkaStorageError):
                raise
            raise KafkaStorageError(f"append to {self.dir} failed: {exc}") from exc
        self._log_end_offset = last_offset + 1
        if self._log_end_offset - self._recovery_point >= self._config.flush_messages:
            self.flush()

    def _maybe_roll(
        self, size: int, first_offset: int, last_offset: int, now_ms: int
    ) -> LogSegment:
        """Kafka's ``LogSegment.shouldRoll`` then ``roll``: size, age, full index, offsets."""
        config = self._config
        active = self._segments[-1]
        if active.size == 0:
            if not active.can_hold_offset(last_offset):
                # An empty segment is simply re-based (a follower jumping a huge gap).
                return self._replace_empty_active(first_offset, now_ms)
            return active
        roll_base = active.roll_base_ms if active.roll_base_ms is not None else now_ms
        if (
            active.size > config.segment_bytes - size
            or now_ms - roll_base > config.segment_ms
            or active.offset_index.is_full
            or active.time_index.is_full
            or not active.can_hold_offset(last_offset)
        ):
            return self.roll(now_ms, base_offset=first_offset)
        return active

    def _replace_empty_active(self, base_offset: int, now_ms: int) -> LogSegment:
        if base_offset < self._log_end_offset:
            raise ValueError(f"cannot base a segment at {base_offset} below the log end")
        old = self._segments.pop()
        self._bases.pop()
        old.delete()
        return self._add_segment(base_offset, now_ms)

    def _add_segment(self, base_offset: int, now_ms: int) -> LogSegment:
        segment = LogSegment.create(
            self.dir,
            base_offset,
            cache=self._cache,
            index_interval_bytes=self._config.index_interval_bytes,
            max_index_size=self._config.segment_index_bytes,
            now_ms=now_ms,
        )
        self._segments.append(segment)
        self._bases.append(base_offset)
        self._dir_changes += 1
        return segment

    def roll(self, now_ms: int | None = None, *, base_offset: int | None = None) -> LogSegment:
        """Close the active segment to appends and start a new one at the log end.

        A no-op when the active segment is empty. The rolled segment is flushed by
        the next :meth:`flush` (the log manager's periodic flusher does it).
        """
        self._check_open()
        active = self._segments[-1]
        if active.size == 0:
            return active
        base = (
            self._log_end_offset if base_offset is None else max(base_offset, self._log_end_offset)
        )
        active.on_become_inactive()
        segment = self._add_segment(base, _wall_ms() if now_ms is None else now_ms)
        self._take_snapshot(base)
        return segment

    def _take_snapshot(self, offset: int, *, wait: bool = False) -> None:
        """Kafka's producer snapshot at a roll (and a clean shutdown): a restart replays
        the log from here only. A failure costs a longer replay, not data.

        The state is captured now; the file is written durably by the snapshot writer
        thread (or here, after any pending write, with ``wait``)."""
        data = self.txn_state.snapshot_bytes()
        keep_from = self._segments[0].base_offset
        generation = self._snapshot_generation
        directory = self.dir

        def write() -> None:
            try:
                if log_txn.take_snapshot(directory, offset, data, keep_from, self._snapshot_lock,
                                         lambda: self._snapshot_generation == generation):
                    self._snapshot_offset_written = offset
            except FileNotFoundError:
                pass  # the log was deleted (or moved to be deleted) meanwhile
            except OSError as exc:
                _log.warning("could not write the producer snapshot of %s at %d: %s", directory, offset, exc)

        if wait:
            self.wait_for_snapshot()
            if self._snapshot_offset_written == offset:
                return  # as Kafka: no new offset since the last one, nothing worth a write
            write()
        else:
            self._snapshot_job = _SNAPSHOT_WRITER.submit(write)

    def wait_for_snapshot(self) -> None:
        """Block until the pending producer snapshot (if any) is written (or dropped)."""
        job = self._snapshot_job
        if job is not None:
            job.result()

    def _forget_snapshots_in_flight(self) -> None:
        """A truncation: a snapshot still being written describes batches that may be
        gone; it must not be renamed into place after this."""
        with self._snapshot_lock:
            self._snapshot_generation += 1
            self._snapshot_offset_written = -1

    # -- transactions -----------------------------------------------------------------

    def first_unstable_offset(self) -> int | None:
        """First offset of a transaction not decided or not replicated, or None."""
        return self.txn_state.first_unstable_offset() if self.txn_state.has_transactions else None

    def first_unstable_offset_from_thread(self) -> int | None:
        """:meth:`first_unstable_offset` for a thread other than the owner (the cleaner)."""
        return self.txn_state.first_unstable_offset_unsynced()

    def on_high_watermark(self, high_watermark: int) -> None:
        """Completed transactions whose markers are below ``high_watermark`` are stable."""
        if self.txn_state.unreplicated:
            self.txn_state.on_high_watermark(high_watermark)

    def fetch_upper_bound(self, info: LogReadInfo) -> int:
        """An offset above everything ``info`` read (Kafka's ``fetchUpperBoundOffset``):
        the first indexed batch after the slice in its segment, else the next segment's
        base, else the log end. Bounds the aborted transactions a fetch is told of."""
        if info.slice is None:
            return info.first_batch_offset
        i = max(bisect_right(self._bases, info.first_batch_offset) - 1, 0)
        found = self._segments[i].offset_index.ceiling_offset(info.slice.position + info.slice.size)
        if found is not None:
            return found
        return self._bases[i + 1] if i + 1 < len(self._bases) else self._log_end_offset

    def collect_aborted(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Aborted transactions a read_committed fetch of ``[fetch_offset, upper_bound)``
        must be told (Kafka's collectAbortedTransactions)."""
        if not len(self.aborted):
            return []
        return self.aborted.collect(fetch_offset, upper_bound)

    # -- reads ------------------------------------------------------------------------

    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_message: bool = True,
    ) -> LogReadInfo:
        """HOT. Whole batches from the one holding ``fetch_offset``, from one segment.

        At most ``max_bytes`` unless ``min_one_message`` and the first batch alone
        is larger (then it is returned whole); never a batch holding ``max_offset``
        or later (exclusive bound, e.g. the high watermark). Raises
        OffsetOutOfRangeError outside ``[log_start_offset, log_end_offset]``; at the
        log end, or when nothing fits, the result has no slice.
        """
        start, end = self._log_start_offset, self._log_end_offset
        if fetch_offset < start or fetch_offset > end:
            raise OffsetOutOfRangeError(fetch_offset, start, end)
        limit = end if max_offset is None else min(max_offset, end)
        if fetch_offset >= limit:
            return LogReadInfo(None, -1, start, end)
        segments, bases = self._segments, self._bases
        i = max(bisect_right(bases, fetch_offset) - 1, 0)
        while i < len(segments):
            segment = segments[i]
            if segment.base_offset >= limit:
                break
            is_last = i + 1 == len(segments)
            if (not is_last and limit >= bases[i + 1]) or (is_last and limit == end):
                max_position = segment.size
            else:
                bound = segment.translate_offset(limit)
                max_position = segment.size if bound is None else bound.position
            found = segment.read(fetch_offset, max_bytes, max_position, min_one_message)
            if found is not None:
                first, size = found
                if size == 0:
                    break
                return LogReadInfo(
                    FileSlice(segment.file(), first.position, size), first.base_offset, start, end
                )
            i += 1
        return LogReadInfo(None, -1, start, end)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record with timestamp >= ``timestamp_ms``.

        Kafka's ListOffsets lookup: the first segment whose largest timestamp
        reaches the target, then its time index, offset index and a scan of the
        candidate batches' records. None when no record qualifies. The special
        targets (-1 latest, -2 earliest) are the caller's to map.
        """
        start = self._log_start_offset
        segments = self._segments
        for i, segment in enumerate(segments):
            if i + 1 < len(segments) and segments[i + 1].base_offset <= start:
                continue
            if segment.largest_timestamp < timestamp_ms:
                continue
            found = segment.find_offset_by_timestamp(timestamp_ms, start)
            if found is not None:
                return found
        return None

    # -- durability -------------------------------------------------------------------

    def flush(self, up_to: int | None = None) -> None:
        """fsync segments holding offsets below ``up_to`` (default: the log end).

        Safe to call from a worker thread while the owner thread appends; advances
        :attr:`recovery_point`. Waits for the producer snapshot being written first
        (Kafka's flush fsyncs the snapshot of the roll too).
        """
        self.wait_for_snapshot()
        with self._flush_lock:
            if self._closed:
                return
            end = self._log_end_offset
            target = end if up_to is None else min(up_to, end)
            recovery_point = self._recovery_point
            dir_changes = self._dir_changes
            if target <= recovery_point and dir_changes == self._dir_changes_flushed:
                return
            segments = list(self._segments)
            started = time.perf_counter()
            try:
                for i, segment in enumerate(segments):
                    if segment.base_offset >= target:
                        break
                    following = segments[i + 1].base_offset if i + 1 < len(segments) else None
                    if following is not None and following <= recovery_point:
                        continue
                    segment.flush()
                if dir_changes != self._dir_changes_flushed:
                    fsync_dir(self.dir)
                    self._dir_changes_flushed = dir_changes
            except FileNotFoundError:
                if self._closed:
                    return
                raise
            with self._state_lock:
                self._recovery_point = max(self._recovery_point, min(target, self._log_end_offset))
            self.last_flush_ms = _wall_ms()
            FLUSH_TIMES.observe(time.perf_counter() - started)

    # -- truncation and deletion of records ---------------------------------------------

    def truncate_to(self, offset: int, now_ms: int | None = None) -> bool:
        """Remove every offset >= ``offset`` (a follower's truncation). True if anything went.

        The batch holding ``offset`` goes whole, so the new log end may be below
        ``offset`` if it was not a batch boundary.
        """
        self._check_open()
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        if offset >= self._log_end_offset:
            return False
        now = _wall_ms() if now_ms is None else now_ms
        if offset < self._segments[0].base_offset or offset < self._log_start_offset:
            self.truncate_fully_and_start_at(offset, now)
            return True
        keep = bisect_right(self._bases, offset)
        for segment in self._segments[keep:]:
            segment.delete()
        del self._segments[keep:]
        del self._bases[keep:]
        active = self._segments[-1]
        active.truncate_to(offset, now)
        assert active.next_offset is not None
        with self._state_lock:
            self._log_end_offset = active.next_offset
            self._recovery_point = min(self._recovery_point, self._log_end_offset)
        self._forget_snapshots_in_flight()
        self.txn_state, self.aborted = log_txn.reload_after_truncation(
            self.dir, self._segments, self._log_start_offset, self._log_end_offset
        )
        return True

    def truncate_fully_and_start_at(self, offset: int, now_ms: int | None = None) -> None:
        """Delete every segment and restart the log empty at ``offset``."""
        self._check_open()
        now = _wall_ms() if now_ms is None else now_ms
        for segment in self._segments:
            segment.delete()
        self._segments.clear()
        self._bases.clear()
        self._add_segment(offset, now)
        with self._state_lock:
            self._log_end_offset = offset
            self._log_start_offset = offset
            self._recovery_point = offset
        self._forget_snapshots_in_flight()
        log_txn.remove_snapshots(self.dir)
        self.txn_state, self.aborted = log_txn.reload_after_truncation(self.dir, self._segments, offset, offset)

    def delete_records_before(self, offset: int) -> int:
        """Move the log start offset up to ``offset`` (DeleteRecords); returns it.

        Segments entirely below the new start are deleted. Raises
        OffsetOutOfRangeError above the log end.
        """
        self._check_open()
        if offset > self._log_end_offset:
            raise OffsetOutOfRangeError(offset, self._log_start_offset, self._log_end_offset)
        if offset <= self._log_start_offset:
            return self._log_start_offset
        self._log_start_offset = offset
        if offset == self._log_end_offset and self._segments[-1].base_offset < offset:
            self.roll()
        self._delete_segments_below(offset)
        return offset

    def replace_segments(
        self, cleaned: LogSegment, old: Sequence[LogSegment], retained_aborts: set[int] | None = None
    ) -> bool:
        """Swap a cleaned segment (files named ``*.swap``) in for ``old`` (the log cleaner's).

        Owner thread only; costs a few renames and no data I/O. ``old`` must still
        be consecutive, inactive segments of this log, unchanged since the cleaner
        read them (no truncation, retention or DeleteRecords in between); otherwise
        nothing happens and False is returned, and the caller drops its files. The
        old segments are deleted (renamed ``.deleted`` first, so fetches holding
        their slices keep reading) before the cleaned files take their final names;
        :func:`complete_swaps` finishes the job if a crash interrupts it.
        """
        if self._closed or not old:
            return False
        segments = self._segments
        try:
            first = next(i for i, s in enumerate(segments) if s is old[0])
        except StopIteration:
            return False
        stop = first + len(old)
        if stop >= len(segments) or any(
            a is not b or a.deleted for a, b in zip(segments[first:stop], old, strict=True)
        ):
            return False
        if cleaned.base_offset != old[0].base_offset:
            raise ValueError("a cleaned segment must start at its first old segment's base")
        for segment in old:
            segment.delete()
        cleaned.change_suffix(SWAP_SUFFIX, "")
        segments[first:stop] = [cleaned]
        self._bases[first:stop] = [cleaned.base_offset]
        self._dir_changes += 1
        # the aborted-index entries of the markers the cleaner kept move to the cleaned
        # segment's .txnindex (all of them when it says nothing). A crash before this
        # rewrite loses them, harmlessly: the cleaner removed every aborted record
        # below those markers in the same pass.
        self.aborted.replace_segments(cleaned.base_offset, self._bases[first + 1], retained_aborts)
        return True

    def _delete_segments_below(self, offset: int) -> None:
        count = 0
        while count + 1 < len(self._segments) and self._bases[count + 1] <= offset:
            count += 1
        for segment in self._segments[:count]:
            segment.delete()
        del self._segments[:count]
        del self._bases[:count]
        if count:
            self.aborted.drop_segments_below(self._bases[0])

    def delete_retained_segments(self, now_ms: int, *, upper_bound: int | None = None) -> int:
        """Apply ``retention.ms`` / ``retention.bytes`` (delete policy); returns segments removed.

        Only whole, inactive segments whose end is at or below ``upper_bound``
        (e.g. the high watermark; default the log end) are deleted, oldest first.
        """
        self._check_open()
        config = self._config
        if not config.delete:
            return 0
        bound = self._log_end_offset if upper_bound is None else upper_bound
        excess = self.size_in_bytes - config.retention_bytes if config.retention_bytes >= 0 else 0
        count = 0
        for i in range(len(self._segments) - 1):
            segment, following = self._segments[i], self._bases[i + 1]
            if following > bound:
                break
            expired = config.retention_ms >= 0 and (
                segment.largest_timestamp >= 0
                and now_ms - segment.largest_timestamp > config.retention_ms
            )
            if not expired and excess - segment.size < 0:
                break
            excess -= segment.size
            count += 1
        if count:
            new_start = self._bases[count]
            self._log_start_offset = max(self._log_start_offset, new_start)
            self._delete_segments_below(new_start)
        return count

    # -- lifecycle --------------------------------------------------------------------

    def close(self, *, flush: bool = False) -> None:
        """Finish the active segment's time index and drop the file handles.

        With ``flush`` everything, that final time index entry included, is fsynced
        first (a clean shutdown); without it nothing is.
        """
        if self._closed:
            return
        active = self._segments[-1]
        active.on_become_inactive()
        if flush:
            self.flush()
            active.flush()
            self._take_snapshot(self._log_end_offset, wait=True)
        else:
            # a roll's snapshot not renamed yet is dropped; one being written is
            # waited for (rarely, one small fsync), so no file appears after the close
            self._forget_snapshots_in_flight()
            self.wait_for_snapshot()
        with self._flush_lock:
            self._closed = True
            for segment in self._segments:
                segment.close()
            self._cache.evict_under(self.dir)

    def delete(self) -> None:
        """Close and remove the whole directory (callers wanting it async rename first)."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"log {self.dir} is closed")

    def __repr__(self) -> str:
        return (
            f"Log({self.dir.name}, start={self._log_start_offset}, "
            f"end={self._log_end_offset}, segments={len(self._segments)})"
        )
