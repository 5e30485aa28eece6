"""One log segment: a ``.log`` file of record batches plus its two sparse indexes.

Files (in the partition directory, named by the segment's base offset, 20 digits)::

    00000000000000001234.log        record batches, byte for byte as appended
    00000000000000001234.index      offset -> position   (see offset_index.py)
    00000000000000001234.timeindex  timestamp -> offset  (see time_index.py)

``.log`` format: Kafka record batches (magic v2) laid end to end, nothing else, no
file header. Every batch starts with the 12-byte log overhead ``base_offset:int64,
batch_length:int32`` (big-endian), so a reader can skip from batch to batch by
reading headers only; this module reads the first 43 bytes of a batch header (up to
and including ``max_timestamp``) to learn its offsets and timestamp without touching
record data. Offsets increase strictly from batch to batch and every offset in the
file is >= the segment's base offset and < base offset + 2**31 (indexes store them
relative, as int32).

The segment's size is tracked in memory and trusted: bytes beyond it (a torn write
before a crash) are invisible until recovery truncates them. Appends use
``os.pwrite`` at that size; reads use ``os.pread`` and hand out :class:`FileSlice`
objects for zero-copy sending. File handles come from the shared
:class:`~moldau.storage.file_cache.FileCache` on every use, never stored.

Recovery (:meth:`LogSegment.recover`) reads the file in large chunks, frames and
validates batches (CRC-32C, magic, lengths, via :mod:`moldau.records`), checks that
offsets increase and fit the segment, truncates at the first invalid or torn batch
and rebuilds both indexes in one write each.

Thread-safety: a segment is owned by its log's thread (the event loop), which does
every append, read, truncation and deletion. :meth:`LogSegment.flush` may run
concurrently on a flusher thread: it only fsyncs, and tolerates a segment deleted
under it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from moldau.records import (
    BATCH_OVERHEAD,
    LOG_OVERHEAD,
    BatchView,
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    decode_records,
    iter_batches,
    validate_batches,
)
from moldau.storage._index import INT32_MAX
from moldau.storage.errors import CorruptIndexError, KafkaStorageError
from moldau.storage.file_cache import FileCache
from moldau.storage.offset_index import OffsetIndex
from moldau.storage.time_index import NO_TIMESTAMP, TimeIndex
from moldau.storage.txn_index import TXN_INDEX_SUFFIX

__all__ = [
    "BatchPosition",
    "LogSegment",
    "filename_prefix",
    "parse_base_offset",
    "walk_batches",
]

_log = logging.getLogger(__name__)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
# the aborted transactions of the segment (written by .txn_index) move and go with
# the segment's other files

# base_offset, batch_length, partition_leader_epoch, magic, crc, attributes,
# last_offset_delta, base_timestamp, max_timestamp: the first 43 bytes of a v2 batch.
_HEADER = struct.Struct(">qiibIhiqq")
_HEADER_SIZE = _HEADER.size

# How much to read per pread when walking headers; small batches share one read.
_WALK_CHUNK = 16 * 1024
# How much to read per pread during recovery: large, so a scan is a few syscalls.
_RECOVERY_CHUNK = 8 * 1024 * 1024


DELETED_SUFFIX = ".deleted"
_DELETER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment-deleter")


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def filename_prefix(base_offset: int) -> str:
    """Kafka's segment file name stem: the base offset as 20 zero-padded digits."""
    return f"{base_offset:020d}"


def parse_base_offset(name: str, suffix: str = LOG_SUFFIX) -> int | None:
    """The base offset in a file name like ``00000000000000001234.log``, else None."""
    if not name.endswith(suffix):
        return None
    stem = name[: -len(suffix)]
    if len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


class BatchPosition(NamedTuple):
    """What the storage layer needs to know about one batch, from its header."""

    position: int
    base_offset: int
    last_offset: int
    size: int
    max_timestamp: int


def walk_batches(fd: int, start: int, end: int) -> Iterator[BatchPosition]:
    """Yield the headers of the batches in ``[start, end)`` of a trusted file.

    ``start`` must be a batch boundary. Reads are chunked, so a run of small
    batches costs one ``pread``; a large batch costs one ``pread`` of its header
    region. Stops quietly at anything that does not look like a whole batch.
    """
    buf = b""
    buf_start = start
    pos = start
    while pos + _HEADER_SIZE <= end:
        rel = pos - buf_start
        if rel + _HEADER_SIZE > len(buf):
            buf = os.pread(fd, min(_WALK_CHUNK, end - pos), pos)
            buf_start, rel = pos, 0
            if len(buf) < _HEADER_SIZE:
                return
        base, length, _epoch, _magic, _crc, _attributes, delta, _base_ts, max_ts = (
            _HEADER.unpack_from(buf, rel)
        )
        size = length + LOG_OVERHEAD
        if size < BATCH_OVERHEAD or pos + size > end:
            return
        yield BatchPosition(pos, base, base + delta, size, max_ts)
        pos += size


class AppendedBatch(Protocol):
    """What :meth:`LogSegment.append` needs per batch (BatchView fits; so does BatchPosition)."""

    @property
    def position(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def last_offset(self) -> int: ...
    @property
    def max_timestamp(self) -> int: ...


class LogSegment:
    """A ``.log`` file and its indexes (see module docstring for formats and threads)."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        *,
        cache: FileCache,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        size: int,
        index_interval_bytes: int,
    ) -> None:
        self.dir = directory
        self.base_offset = base_offset
        self.log_path = directory / (filename_prefix(base_offset) + LOG_SUFFIX)
        self.offset_index = offset_index
        self.time_index = time_index
        self.index_interval_bytes = index_interval_bytes
        self._cache = cache
        self._size = size
        #: Bytes appended since the last index entry (Kafka's bytesSinceLastIndexEntry).
        self.bytes_since_last_index_entry = 0
        #: Largest batch max timestamp in the segment and the last offset of its batch.
        self.max_timestamp_so_far, self.offset_of_max_timestamp = time_index.last_entry
        #: The offset after the last batch, once known (always for the active segment).
        self.next_offset: int | None = base_offset if size == 0 else None
        #: Wall-clock ms the segment's age for ``segment.ms`` is measured from.
        self.roll_base_ms: int | None = None
        self.deleted = False

    # -- construction -------------------------------------------------------------

    @staticmethod
    def paths(directory: Path, base_offset: int, suffix: str = "") -> tuple[Path, Path, Path]:
        """The ``.log``, ``.index`` and ``.timeindex`` paths of a segment.

        ``suffix`` (``.cleaned``, ``.swap``) names the files of a segment the log
        cleaner is building or swapping in (Kafka's scheme, see :mod:`.cleaner`).
        """
        stem = filename_prefix(base_offset)
        return (
            directory / (stem + LOG_SUFFIX + suffix),
            directory / (stem + INDEX_SUFFIX + suffix),
            directory / (stem + TIME_INDEX_SUFFIX + suffix),
        )

    @classmethod
    def create(
        cls,
        directory: Path,
        base_offset: int,
        *,
        cache: FileCache,
        index_interval_bytes: int,
        max_index_size: int,
        now_ms: int,
        suffix: str = "",
    ) -> LogSegment:
        """Create an empty segment; refuses to clobber a non-empty ``.log``.

        With a ``suffix`` the files are named ``<base>.log<suffix>`` etc. (the log
        cleaner's ``.cleaned`` segments); :meth:`change_suffix` renames them later.
        """
        log_path, index_path, time_path = cls.paths(directory, base_offset, suffix)
        f = cache.get(log_path, create=True)
        if os.fstat(f.fileno()).st_size:
            raise FileExistsError(f"segment {log_path} already exists and is not empty")
        segment = cls(
            directory,
            base_offset,
            cache=cache,
            offset_index=OffsetIndex.create(index_path, base_offset, max_index_size, cache),
            time_index=TimeIndex.create(time_path, base_offset, max_index_size, cache),
            size=0,
            index_interval_bytes=index_interval_bytes,
        )
        segment.log_path = log_path
        segment.roll_base_ms = now_ms
        return segment

    @classmethod
    def open(
        cls,
        directory: Path,
        base_offset: int,
        *,
        cache: FileCache,
        index_interval_bytes: int,
        max_index_size: int,
    ) -> tuple[LogSegment, bool]:
        """Open an existing segment without scanning it.

        Returns the segment and whether its indexes are usable; when they are
        missing or fail their sanity checks the segment comes back with empty
        indexes and needs :meth:`recover`.
        """
        log_path, index_path, time_path = cls.paths(directory, base_offset)
        size = log_path.stat().st_size
        try:
            offset_index = OffsetIndex.load(index_path, base_offset, max_index_size, cache)
            time_index = TimeIndex.load(time_path, base_offset, max_index_size, cache)
            offset_index.sanity_check(size)
            time_index.sanity_check(base_offset + INT32_MAX + 1)
            ok = True
        except (FileNotFoundError, CorruptIndexError) as exc:
            _log.warning("rebuilding indexes of segment %s: %s", log_path, exc)
            offset_index = OffsetIndex(index_path, base_offset, max_index_size, cache)
            time_index = TimeIndex(time_path, base_offset, max_index_size, cache)
            ok = False
        segment = cls(
            directory,
            base_offset,
            cache=cache,
            offset_index=offset_index,
            time_index=time_index,
            size=size,
            index_interval_bytes=index_interval_bytes,
        )
        return segment, ok

    # -- properties -----------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes of valid batches in the ``.log`` file."""
        return self._size

    @property
    def index_path(self) -> Path:
        """Path of the ``.index`` file."""
        return self.offset_index.path

    @property
    def time_index_path(self) -> Path:
        """Path of the ``.timeindex`` file."""
        return self.time_index.path

    @property
    def txn_index_path(self) -> Path:
        """Path of the ``.txnindex`` file (it exists once the segment holds an abort)."""
        name = self.log_path.name  # <base>.log, or <base>.log<suffix> while cleaned/swapped
        stem = len(filename_prefix(self.base_offset))
        return self.log_path.with_name(name[:stem] + TXN_INDEX_SUFFIX + name[stem + len(LOG_SUFFIX) :])

    def file(self) -> BinaryIO:
        """The shared open handle of the ``.log`` file (keep it referenced while used)."""
        return self._cache.get(self.log_path)

    def can_hold_offset(self, offset: int) -> bool:
        """True when ``offset`` fits this segment's int32 relative offsets."""
        return 0 <= offset - self.base_offset <= INT32_MAX

    # -- appends --------------------------------------------------------------------

    def append(
        self, data: bytes | bytearray | memoryview, batches: Sequence[AppendedBatch], *, now_ms: int
    ) -> None:
        """Append whole, validated batches at the end of the file and index them.

        ``batches`` describe ``data``: positions relative to ``data``, last offsets
        already assigned. A failed write (EIO, ENOSPC) truncates the partial tail
        back off, so the file and the in-memory size stay in step, and raises
        KafkaStorageError.
        """
        if not batches:
            return
        position = self._size
        last_offset = batches[-1].last_offset
        if not self.can_hold_offset(last_offset):
            raise ValueError(f"offset {last_offset} does not fit segment {self.base_offset}")
        f = self._cache.get(self.log_path)
        fd = f.fileno()
        view = memoryview(data).cast("B")
        offset = position
        try:
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, position)
            raise KafkaStorageError(f"write to {self.log_path} failed: {exc}") from exc
        if position == 0 or self.roll_base_ms is None:
            self.roll_base_ms = now_ms
        self._index_batches(batches, position)
        self._size = offset
        self.next_offset = last_offset + 1

    def _index_batches(self, batches: Sequence[AppendedBatch], base_position: int) -> None:
        # Kafka's rule (LogSegment.append / recover): a batch gets an index entry
        # when more than index.interval.bytes were appended since the last entry.
        offset_index, time_index = self.offset_index, self.time_index
        for batch in batches:
            if batch.max_timestamp > self.max_timestamp_so_far:
                self.max_timestamp_so_far = batch.max_timestamp
                self.offset_of_max_timestamp = batch.last_offset
            if self.bytes_since_last_index_entry > self.index_interval_bytes:
                if not offset_index.is_full:
                    offset_index.append(batch.last_offset, base_position + batch.position)
                if not time_index.is_full:
                    time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp)
                self.bytes_since_last_index_entry = 0
            self.bytes_since_last_index_entry += batch.size

    # -- lookups --------------------------------------------------------------------

    def translate_offset(self, offset: int, start_position: int = 0) -> BatchPosition | None:
        """The first batch whose last offset is >= ``offset``, or None past the end."""
        _, position = self.offset_index.lookup(offset)
        f = self._cache.get(self.log_path)
        for header in walk_batches(f.fileno(), max(position, start_position), self._size):
            if header.last_offset >= offset:
                return header
        return None

    def read(
        self, fetch_offset: int, max_bytes: int, max_position: int, min_one_message: bool
    ) -> tuple[BatchPosition, int] | None:
        """Locate whole batches from the one holding ``fetch_offset``.

        Returns the first batch and the number of bytes to send from its position:
        whole batches only, at most ``max_bytes`` (unless ``min_one_message`` and
        the first batch alone is larger), never past ``max_position`` (a batch
        boundary). None when no batch in this segment reaches ``fetch_offset``.
        """
        first = self.translate_offset(fetch_offset)
        if first is None:
            return None
        start = first.position
        limit = min(max_position, self._size)
        if start >= limit:
            return first, 0
        budget_end = start + max(max_bytes, 0)
        first_end = start + first.size
        if budget_end >= limit:
            return first, limit - start
        if first_end > budget_end:
            return first, (first.size if min_one_message else 0)
        # The largest batch boundary <= budget_end: jump with the index, then walk.
        end = first_end
        walk_from = max(first_end, self.offset_index.floor_position(budget_end))
        if walk_from > end:
            end = walk_from
        f = self._cache.get(self.log_path)
        for header in walk_batches(f.fileno(), walk_from, limit):
            header_end = header.position + header.size
            if header_end > budget_end:
                break
            end = header_end
        return first, end - start

    def find_offset_by_timestamp(
        self, timestamp: int, starting_offset: int
    ) -> tuple[int, int] | None:
        """First ``(offset, timestamp)`` with timestamp >= target and offset >= start."""
        _, indexed_offset = self.time_index.lookup(timestamp)
        _, position = self.offset_index.lookup(max(indexed_offset, starting_offset))
        f = self._cache.get(self.log_path)
        fd = f.fileno()
        for header in walk_batches(fd, position, self._size):
            if header.max_timestamp < timestamp or header.last_offset < starting_offset:
                continue
            data = os.pread(fd, header.size, header.position)
            # decode_records reports LogAppendTime batches' time for every record.
            for record in decode_records(BatchView(memoryview(data), 0)):
                if record.timestamp >= timestamp and record.offset >= starting_offset:
                    return record.offset, record.timestamp
        return None

    @property
    def largest_timestamp(self) -> int:
        """The largest batch timestamp in the segment, -1 when it has none."""
        return self.max_timestamp_so_far

    # -- state rebuilt without a full scan --------------------------------------------

    def load_tail_state(self, now_ms: int) -> bool:
        """Learn next offset, max timestamp and index spacing from the unindexed tail.

        Walks only the batches after the last offset-index entry (a few KiB).
        Returns False if the tail does not end exactly at the file size, in which
        case the segment needs :meth:`recover`.
        """
        f = self._cache.get(self.log_path)
        fd = f.fileno()
        start = self.offset_index.last_position
        end = start
        next_offset = self.offset_index.last_offset + 1 if self.offset_index.entries else None
        for header in walk_batches(fd, start, self._size):
            end = header.position + header.size
            next_offset = header.last_offset + 1
            if header.max_timestamp > self.max_timestamp_so_far:
                self.max_timestamp_so_far = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
        if end != self._size:
            return False
        self.next_offset = self.base_offset if next_offset is None else next_offset
        self.bytes_since_last_index_entry = self._size - start
        self.roll_base_ms = now_ms
        if self._size:
            for header in walk_batches(fd, 0, self._size):
                if header.max_timestamp >= 0:
                    self.roll_base_ms = min(header.max_timestamp, now_ms)
                break
        return True

    # -- recovery ---------------------------------------------------------------------

    def recover(self, now_ms: int) -> int:
        """Validate every batch, truncate at the first bad one, rebuild both indexes.

        Returns the number of bytes truncated. The file is read in large chunks;
        batches are framed and CRC-checked by :mod:`moldau.records`.
        """
        f = self._cache.get(self.log_path)
        fd = f.fileno()
        file_size = os.fstat(fd).st_size
        interval = self.index_interval_bytes
        offset_cap = self.offset_index.max_entries
        time_cap = max(self.time_index.max_entries - 1, 0)
        index_entries: list[tuple[int, int]] = []
        time_entries: list[tuple[int, int]] = []
        max_ts, offset_of_max_ts = NO_TIMESTAMP, self.base_offset
        next_offset = self.base_offset
        first_ts: int | None = None
        last_index_position = 0
        valid = 0
        while valid < file_size:
            buf = os.pread(fd, min(_RECOVERY_CHUNK, file_size - valid), valid)
            if len(buf) < LOG_OVERHEAD:
                break  # torn header
            first_size = int.from_bytes(buf[8:12], "big", signed=True) + LOG_OVERHEAD
            if first_size < BATCH_OVERHEAD:
                break  # not a batch
            if first_size > len(buf):
                if valid + first_size > file_size:
                    break  # torn batch
                buf = os.pread(fd, first_size, valid)
            views, clean = _valid_batches(memoryview(buf))
            consumed = 0
            for view in views:
                base, last = view.base_offset, view.last_offset
                if base < next_offset or last < base or not self.can_hold_offset(last):
                    clean = False
                    break
                position = valid + view.position
                batch_ts = view.max_timestamp
                if first_ts is None:
                    first_ts = batch_ts
                if batch_ts > max_ts:
                    max_ts, offset_of_max_ts = batch_ts, last
                if position - last_index_position > interval:
                    if len(index_entries) < offset_cap:
                        index_entries.append((last, position))
                    last_indexed_ts = time_entries[-1][0] if time_entries else NO_TIMESTAMP
                    if len(time_entries) < time_cap and max_ts > last_indexed_ts:
                        time_entries.append((max_ts, offset_of_max_ts))
                    last_index_position = position
                next_offset = last + 1
                consumed = view.position + view.size
            valid += consumed
            if not clean or consumed == 0:
                break
        truncated = file_size - valid
        if truncated:
            _log.warning(
                "truncating %d invalid bytes at position %d of segment %s",
                truncated,
                valid,
                self.log_path,
            )
            os.ftruncate(fd, valid)
        self.offset_index.replace(index_entries)
        self.time_index.replace(time_entries)
        self.time_index.maybe_append(max_ts, offset_of_max_ts, skip_full_check=True)
        self._size = valid
        self.next_offset = next_offset
        self.max_timestamp_so_far, self.offset_of_max_timestamp = max_ts, offset_of_max_ts
        self.bytes_since_last_index_entry = valid - last_index_position
        self.roll_base_ms = now_ms if first_ts is None or first_ts < 0 else min(first_ts, now_ms)
        return truncated

    # -- truncation, roll, flush, close, delete -------------------------------------------

    def truncate_to(self, offset: int, now_ms: int) -> int:
        """Remove the batch holding ``offset`` and everything after; returns bytes removed."""
        header = self.translate_offset(offset)
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        if header is None:
            return 0
        f = self._cache.get(self.log_path)
        removed = self._size - header.position
        os.ftruncate(f.fileno(), header.position)
        self._size = header.position
        self.max_timestamp_so_far, self.offset_of_max_timestamp = self.time_index.last_entry
        if not self.load_tail_state(now_ms):  # pragma: no cover - trusted region
            raise CorruptIndexError(f"segment {self.log_path} is inconsistent after truncation")
        return removed

    def on_become_inactive(self) -> None:
        """Write the final time index entry once the segment stops taking appends."""
        if self.max_timestamp_so_far >= 0:
            self.time_index.maybe_append(
                self.max_timestamp_so_far, self.offset_of_max_timestamp, skip_full_check=True
            )

    def flush(self) -> None:
        """fsync the log and both indexes; safe from a flusher thread."""
        if self.deleted:
            return
        try:
            f = self._cache.get(self.log_path)
            os.fsync(f.fileno())
            self.offset_index.flush()
            self.time_index.flush()
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(self.txn_index_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except FileNotFoundError:
            if not self.deleted:
                raise

    def close(self) -> None:
        """Write the final time index entry and drop the cached handles."""
        if not self.deleted:
            self.on_become_inactive()
        self._cache.evict_all([self.log_path, self.index_path, self.time_index_path])

    def change_suffix(self, old: str, new: str) -> None:
        """Rename the segment's three files from suffix ``old`` to ``new`` (Kafka's swap).

        The ``.log`` file is renamed last, so that its new name implies the
        indexes' (recovery keys on the ``.log`` name alone). Cached handles are
        dropped first, as the cache is keyed by path. Missing index files are
        skipped: they are rebuilt on open.
        """
        with contextlib.suppress(FileNotFoundError):
            txn = self.txn_index_path
            os.rename(txn, txn.with_name(txn.name[: len(txn.name) - len(old)] + new))
        paths = [self.index_path, self.time_index_path, self.log_path]
        self._cache.evict_all(paths)
        renamed: list[Path] = []
        for path in paths:
            name = path.name
            if not name.endswith(old):
                raise ValueError(f"{path} does not end with {old!r}")
            target = path.with_name(name[: len(name) - len(old)] + new)
            try:
                os.rename(path, target)
            except FileNotFoundError:
                if path is self.log_path:
                    raise
            renamed.append(target)
        self.offset_index.path, self.time_index.path, self.log_path = renamed

    def delete(self) -> None:
        """Remove the segment's files (open slices keep their data readable).

        Like Kafka, the files are first renamed to ``*.deleted`` (a cheap metadata
        change) and unlinked by a background thread, because freeing the blocks of a
        large file can take long enough to stall the event loop. Leftover ``.deleted``
        files from a crash are removed when the log is opened.
        """
        self.deleted = True
        self._cache.evict_all([self.log_path, self.index_path, self.time_index_path])
        doomed = []
        for path in (self.log_path, self.index_path, self.time_index_path, self.txn_index_path):
            target = path.with_name(path.name + DELETED_SUFFIX)
            try:
                os.rename(path, target)
            except FileNotFoundError:
                continue
            doomed.append(target)
        if doomed:
            _DELETER.submit(_unlink_all, doomed)

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self._size})"


def _valid_batches(buf: memoryview) -> tuple[list[BatchView], bool]:
    """The whole, valid batches at the start of ``buf`` and whether no error followed.

    The common case (everything valid) costs one ``validate_batches`` call for the
    whole chunk; only when it fails is each batch validated alone to find the
    first bad one.
    """
    views: list[BatchView] = []
    clean = True
    try:
        for view in iter_batches(buf, allow_partial_tail=True):
            views.append(view)
    except CorruptRecordError:
        clean = False
    if not views:
        return views, clean
    complete = views[-1].position + views[-1].size
    try:
        validate_batches(buf[:complete], max_batch_bytes=INT32_MAX, from_client=False)
    except (CorruptRecordError, InvalidRecordError, RecordTooLargeError):
        for i, view in enumerate(views):
            try:
                validate_batches(
                    buf[view.position : view.position + view.size],
                    max_batch_bytes=INT32_MAX,
                    from_client=False,
                )
            except (CorruptRecordError, InvalidRecordError, RecordTooLargeError):
                return views[:i], False
    return views, clean
