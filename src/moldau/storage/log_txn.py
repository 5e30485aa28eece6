"""How a log keeps its producer/transaction state and aborted index in step with its batches.

Every append (leader, follower) and the recovery replay feed batches through
:func:`apply_batch`; :func:`load` builds the state when a log opens: the latest usable
``.snapshot`` at or below the replay limit (the log end after a clean shutdown, the
recovery point after a crash), the ``.txnindex`` entries of markers below it, then a
replay of the batches from the snapshot to the log end, which also re-writes the
aborted-index entries of the replayed markers (so a ``.txnindex`` torn or lost in a
crash is rebuilt). Without a snapshot (a log from before snapshots) the replay starts
at the first segment. The replay reads batch headers only (one ``pread`` per chunk
of small batches, one per large batch) and reads the records of control batches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from moldau.records import CONTROL_FLAG_MASK, TRANSACTIONAL_FLAG_MASK, BatchView, decode_records
from moldau.storage.txn_index import TXN_INDEX_SUFFIX, AbortedTxn, AbortedTxnIndex
from moldau.storage.txn_state import (
    ControlMarker,
    CorruptSnapshotError,
    ProducerTxnState,
    list_snapshots,
    parse_marker,
    read_snapshot,
    snapshot_path,
    write_snapshot,
)

if TYPE_CHECKING:
    from moldau.storage.segment import LogSegment

_log = logging.getLogger(__name__)

# baseOffset .. baseSequence: the first 57 bytes of a v2 batch header
_HEAD = struct.Struct(">qiibIhiqqqhi")
_HEAD_SIZE = _HEAD.size
_CHUNK = 64 * 1024


def marker_of(batch: BatchView) -> tuple[bool, int] | None:
    """(commit, coordinator epoch) of a control batch holding a transaction marker."""
    try:
        records = decode_records(batch)
    except Exception:  # a control batch we cannot read is not a marker we know
        return None
    if not records:
        return None
    marker = parse_marker(records[0].key, records[0].value)
    return None if marker is None else (marker.commit, marker.coordinator_epoch)


def apply_batch(
    state: ProducerTxnState,
    aborted: AbortedTxnIndex,
    head: tuple[int, ...],
    batch: BatchView | None,
    segment_base: int,
) -> None:
    """Apply one appended batch (its decoded header ``head``; the view, needed for a
    control batch) to the state; an aborted transaction goes to the index."""
    base, _length, _ple, _magic, _crc, attributes, delta, _bts, max_ts, pid, epoch, seq = head[:12]
    if pid < 0:
        return
    if attributes & CONTROL_FLAG_MASK:
        found = marker_of(batch) if batch is not None else None
        if found is None:
            return
        completed = state.on_marker(pid, epoch, base + delta, max_ts, ControlMarker(*found))
        if completed is not None and completed.is_aborted:
            first = state.first_ongoing_offset()
            lso = completed.last_offset + 1 if first is None else first
            aborted.append(
                segment_base, AbortedTxn(pid, completed.first_offset, completed.last_offset, lso)
            )
        return
    state.on_data_batch(
        pid, epoch, seq, base, base + delta, max_ts, bool(attributes & TRANSACTIONAL_FLAG_MASK)
    )


def apply_batches(
    state: ProducerTxnState, aborted: AbortedTxnIndex, batches: Sequence[BatchView], segment_base: int
) -> None:
    """HOT (per batch). Apply appended batches; one field read for a batch with no producer."""
    for batch in batches:
        if batch.producer_id < 0:
            continue
        apply_batch(state, aborted, batch.header(), batch, segment_base)
    if batches:
        state.end_offset = batches[-1].last_offset + 1


def _walk(segment: LogSegment, start_position: int) -> Iterator[tuple[tuple[int, ...], BatchView | None]]:
    """(header, view for control batches) of the batches from ``start_position``."""
    fd = segment.file().fileno()
    end = segment.size
    pos = start_position
    buf = b""
    buf_start = pos
    while pos + _HEAD_SIZE <= end:
        rel = pos - buf_start
        if rel + _HEAD_SIZE > len(buf):
            buf = os.pread(fd, min(_CHUNK, end - pos), pos)
            buf_start, rel = pos, 0
            if len(buf) < _HEAD_SIZE:
                return
        head = _HEAD.unpack_from(buf, rel)
        size = head[1] + 12
        if size < 61 or pos + size > end:
            return
        view = None
        if head[9] >= 0 and head[5] & CONTROL_FLAG_MASK:
            data = buf[rel : rel + size] if rel + size <= len(buf) else os.pread(fd, size, pos)
            view = BatchView(data, 0)
        yield head, view
        pos += size


def replay(
    state: ProducerTxnState, aborted: AbortedTxnIndex, segments: Sequence[LogSegment], start: int
) -> int:
    """Apply the batches at or after offset ``start``; returns how many were read."""
    count = 0
    for i, segment in enumerate(segments):
        following = segments[i + 1].base_offset if i + 1 < len(segments) else None
        if following is not None and following <= start:
            continue
        position = 0
        if start > segment.base_offset:
            found = segment.translate_offset(start)
            if found is None:
                continue
            position = found.position
        for head, view in _walk(segment, position):
            if head[0] + head[6] < start:
                continue
            apply_batch(state, aborted, head, view, segment.base_offset)
            state.end_offset = head[0] + head[6] + 1
            count += 1
    return count


def load(
    directory: Path,
    segments: Sequence[LogSegment],
    log_start_offset: int,
    log_end_offset: int,
    replay_limit: int,
) -> tuple[ProducerTxnState, AbortedTxnIndex]:
    """The state and aborted index of a log being opened (see the module docstring)."""
    state = ProducerTxnState()
    names = os.listdir(directory)  # one listing for both kinds of file
    present = {int(n[:20]) for n in names if n.endswith(TXN_INDEX_SUFFIX) and n[:20].isdigit()}
    aborted = AbortedTxnIndex.load(directory, [s.base_offset for s in segments], present)
    start = None
    for offset in reversed(list_snapshots(directory, names)):
        path = snapshot_path(directory, offset)
        first_base = segments[0].base_offset if segments else log_start_offset
        if offset > log_end_offset or offset < first_base:
            path.unlink(missing_ok=True)  # batches the log no longer has, or below it
            continue
        if offset > replay_limit or start is not None:
            continue
        try:
            state.load(read_snapshot(path), offset)
            start = offset
        except (CorruptSnapshotError, OSError) as exc:
            _log.warning("ignoring producer state snapshot %s: %s", path, exc)
            path.unlink(missing_ok=True)
    if start is None:
        start = segments[0].base_offset if segments else log_start_offset
        state.clear(start)
    aborted.truncate_from(start)
    count = replay(state, aborted, segments, start)
    state.end_offset = log_end_offset
    if count:
        _log.info(
            "%s: producer state from offset %d, %d batches replayed to %d",
            directory.name, start, count, log_end_offset,
        )
    return state, aborted


def take_snapshot(
    directory: Path, offset: int, data: bytes | ProducerTxnState, keep_from: int,
    lock: threading.Lock | None = None, still_wanted: Callable[[], bool] | None = None,
) -> bool:
    """Write the snapshot at ``offset`` durably (:func:`write_snapshot`); drop the ones
    below ``keep_from`` (the first segment's base: their segments are gone) and above
    ``offset``. With ``lock`` and ``still_wanted`` (a write in a worker thread), the
    rename and the clean-up happen under ``lock`` and only if ``still_wanted()`` (the
    log was not truncated meanwhile); False when it was not written."""

    def publish(tmp: Path, path: Path) -> bool:
        with lock or contextlib.nullcontext():
            if still_wanted is not None and not still_wanted():
                return False
            os.replace(tmp, path)
            for other in list_snapshots(directory):
                if other < keep_from or other > offset:
                    snapshot_path(directory, other).unlink(missing_ok=True)
            return True

    if still_wanted is not None and not still_wanted():
        return False  # stale before it was begun: not even a temporary file
    return write_snapshot(directory, offset, data, publish) is not None


def reload_after_truncation(
    directory: Path, segments: Sequence[LogSegment], log_start_offset: int, log_end_offset: int
) -> tuple[ProducerTxnState, AbortedTxnIndex]:
    """State and index after the log was cut at ``log_end_offset`` (Kafka's
    truncateAndReload): the latest snapshot at or below it, then a replay."""
    for offset in list_snapshots(directory):
        if offset > log_end_offset:
            snapshot_path(directory, offset).unlink(missing_ok=True)
    return load(directory, segments, log_start_offset, log_end_offset, log_end_offset)


def remove_snapshots(directory: Path) -> None:
    """Remove every snapshot (the log starts afresh)."""
    for offset in list_snapshots(directory):
        snapshot_path(directory, offset).unlink(missing_ok=True)
