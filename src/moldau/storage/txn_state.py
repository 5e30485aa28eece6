"""Producer and transaction state of one log, and its ``.snapshot`` files.

Theory of operation (Kafka's ``ProducerStateManager``, the part that lives in the log):
every batch appended to a log -- by a leader, by a follower replicating it, or replayed
in recovery -- passes :meth:`ProducerTxnState.on_batch` with its header, so every
replica derives the same state from the same bytes. Per producer id it keeps the
epoch, last sequence, last offset, last timestamp, the coordinator epoch of its last
transaction marker and the first offset of its ongoing transaction (-1 without one).
A transactional data batch opens a transaction (its base offset is the transaction's
first offset) unless one is open; a control batch (commit or abort marker) closes it.
An abort of a transaction that had data here is an :class:`~.txn_index.AbortedTxn`.

The *first unstable offset* is the smallest first offset of an ongoing transaction, or
of a completed one whose marker is not below the high watermark yet (``unreplicated``:
its outcome is decided but could still be lost with a leader change). The replica's
last stable offset is min(first unstable offset, high watermark): read_committed
consumers read up to it.

Snapshot file (Kafka's format, version 1), ``<offset, 20 digits>.snapshot``, the state
of every batch below ``offset``; big-endian::

    version:int16 (1)  crc:uint32 (CRC-32C of what follows)  count:int32
    count x (producer_id:int64 epoch:int16 last_sequence:int32 last_offset:int64
             offset_delta:int32 timestamp:int64 coordinator_epoch:int32
             current_txn_first_offset:int64)

The log writes one when it rolls a segment (named by the new segment's base; in a
worker thread, see :class:`~moldau.storage.log.Log`) and at a clean shutdown, and loads
the latest one at or below where its replay starts, so a restart reads only the tail
after it rather than the whole log. Writes are durable and atomic
(:func:`write_snapshot`): a temporary ``.snapshot.tmp`` fsynced, renamed, the directory
fsynced; a temporary file a crash left behind is removed when the log opens (as
every ``.tmp`` file is).

Costs: :meth:`on_batch` does a few field reads and dict operations per *batch*; batches
without a producer id return after one comparison. Thread-safety: the log's thread.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from google_crc32c import value as crc32c

from moldau.storage.checkpoint import fsync_dir
from moldau.storage.txn_index import AbortedTxn

__all__ = [
    "SNAPSHOT_SUFFIX",
    "CompletedTxn",
    "ControlMarker",
    "ProducerInfo",
    "ProducerTxnState",
    "encode_marker_record",
    "list_snapshots",
    "parse_marker",
    "read_snapshot",
    "write_snapshot",
]

_log = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".snapshot"
_SNAPSHOT_VERSION = 1
_SNAP_HEAD = struct.Struct(">hI")
_COUNT = struct.Struct(">i")
_SNAP_ENTRY = struct.Struct(">qhiqiqiq")

#: Control record types (Kafka's ``ControlRecordType``) in a marker's key.
ABORT = 0
COMMIT = 1
_MARKER_KEY = struct.Struct(">hh")
_MARKER_VALUE = struct.Struct(">hi")


class ControlMarker(NamedTuple):
    """A decoded end-transaction marker (Kafka's ``EndTransactionMarker``)."""

    commit: bool
    coordinator_epoch: int


def encode_marker_record(commit: bool, coordinator_epoch: int) -> tuple[bytes, bytes]:
    """The key and value of an end-transaction control record."""
    return _MARKER_KEY.pack(0, COMMIT if commit else ABORT), _MARKER_VALUE.pack(0, coordinator_epoch)


def parse_marker(key: bytes | memoryview | None, value: bytes | memoryview | None) -> ControlMarker | None:
    """The marker a control record holds, or None for another control type."""
    if key is None or len(key) < 4:
        return None
    _version, kind = _MARKER_KEY.unpack_from(key, 0)
    if kind not in (ABORT, COMMIT):
        return None
    epoch = -1
    if value is not None and len(value) >= 6:
        epoch = _MARKER_VALUE.unpack_from(value, 0)[1]
    return ControlMarker(kind == COMMIT, epoch)


@dataclass(slots=True)
class ProducerInfo:
    """One producer as a partition knows it (Kafka's ``ProducerStateEntry``)."""

    epoch: int
    last_sequence: int = -1
    last_offset: int = -1
    offset_delta: int = 0
    last_timestamp: int = -1
    coordinator_epoch: int = -1
    #: first offset of the ongoing transaction, -1 when none
    txn_first_offset: int = -1


class CompletedTxn(NamedTuple):
    """A transaction a marker just completed (Kafka's ``CompletedTxn``)."""

    producer_id: int
    first_offset: int
    last_offset: int
    is_aborted: bool


class ProducerTxnState:
    """See the module docstring."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerInfo] = {}
        #: producer id -> first offset of its ongoing transaction
        self.ongoing: dict[int, int] = {}
        #: completed transactions whose marker may still be above the high watermark,
        #: in marker order: (first offset, marker offset)
        self.unreplicated: list[tuple[int, int]] = []
        self._first_ongoing: int | None = None
        self._first_ongoing_dirty = False
        #: the offset after the last batch applied (Kafka's mapEndOffset)
        self.end_offset = 0

    # -- updates ------------------------------------------------------------------------

    def on_data_batch(
        self,
        producer_id: int,
        epoch: int,
        base_sequence: int,
        base_offset: int,
        last_offset: int,
        max_timestamp: int,
        transactional: bool,
    ) -> None:
        """A data batch with a producer id was appended at ``base_offset``."""
        info = self.producers.get(producer_id)
        if info is None:
            info = self.producers[producer_id] = ProducerInfo(epoch)
        elif epoch != info.epoch:
            info.epoch = epoch
        delta = last_offset - base_offset
        info.last_sequence = -1 if base_sequence < 0 else (base_sequence + delta) & 0x7FFFFFFF
        info.last_offset = last_offset
        info.offset_delta = delta
        info.last_timestamp = max_timestamp
        if transactional and info.txn_first_offset < 0:
            info.txn_first_offset = base_offset
            self.ongoing[producer_id] = base_offset
            if self._first_ongoing is None or base_offset < self._first_ongoing:
                self._first_ongoing = base_offset
        self.end_offset = last_offset + 1

    def on_marker(
        self, producer_id: int, epoch: int, offset: int, timestamp: int, marker: ControlMarker
    ) -> CompletedTxn | None:
        """A commit or abort marker was appended at ``offset``; returns the transaction
        it completed here (None when the producer had no data in it on this partition)."""
        info = self.producers.get(producer_id)
        if info is None:
            info = self.producers[producer_id] = ProducerInfo(epoch)
        info.epoch = epoch
        info.coordinator_epoch = marker.coordinator_epoch
        info.last_timestamp = timestamp
        self.end_offset = offset + 1
        first = info.txn_first_offset
        if first < 0:
            return None
        info.txn_first_offset = -1
        self.ongoing.pop(producer_id, None)
        if first == self._first_ongoing:
            self._first_ongoing_dirty = True
        self.unreplicated.append((first, offset))
        return CompletedTxn(producer_id, first, offset, not marker.commit)

    def remove_expired(self, now_ms: int, expiration_ms: int) -> list[int]:
        """Forget producers without an open transaction whose last write is older than
        ``expiration_ms`` (Kafka's ``producer.id.expiration.ms``); their ids."""
        expired = [
            pid for pid, info in self.producers.items()
            if info.txn_first_offset < 0 and now_ms - info.last_timestamp >= expiration_ms
        ]
        for pid in expired:
            del self.producers[pid]
        return expired

    def on_high_watermark(self, high_watermark: int) -> None:
        """Completed transactions whose markers are below ``high_watermark`` are stable."""
        unreplicated = self.unreplicated
        cut = 0
        while cut < len(unreplicated) and unreplicated[cut][1] < high_watermark:
            cut += 1
        if cut:
            del unreplicated[:cut]

    # -- queries ------------------------------------------------------------------------

    def first_unstable_offset(self) -> int | None:
        """The smallest first offset of an undecided or unreplicated transaction."""
        first = self.first_ongoing_offset()
        if self.unreplicated:
            low = min(f for f, _ in self.unreplicated)
            first = low if first is None else min(first, low)
        return first

    def first_ongoing_offset(self) -> int | None:
        """The smallest first offset of an undecided transaction (Kafka's
        firstUndecidedOffset)."""
        if self._first_ongoing_dirty:
            self._first_ongoing = min(self.ongoing.values()) if self.ongoing else None
            self._first_ongoing_dirty = False
        return self._first_ongoing

    def first_unstable_offset_unsynced(self) -> int | None:
        """:meth:`first_unstable_offset` for another thread (the log cleaner): computed
        from copies and writing nothing, so it cannot race the owner's cache. May be
        stale by an append."""
        ongoing = list(self.ongoing.values())
        unreplicated = list(self.unreplicated)
        firsts = ongoing + [f for f, _ in unreplicated]
        return min(firsts) if firsts else None

    @property
    def has_transactions(self) -> bool:
        """True while a transaction is open or unreplicated (the LSO may lag)."""
        return bool(self.ongoing) or bool(self.unreplicated)

    # -- snapshots ----------------------------------------------------------------------

    def clear(self, end_offset: int = 0) -> None:
        self.producers.clear()
        self.ongoing.clear()
        self.unreplicated.clear()
        self._first_ongoing = None
        self._first_ongoing_dirty = False
        self.end_offset = end_offset

    def load(self, entries: dict[int, ProducerInfo], end_offset: int) -> None:
        """Take the state a snapshot at ``end_offset`` holds."""
        self.clear(end_offset)
        self.producers.update(entries)
        for pid, info in entries.items():
            if info.txn_first_offset >= 0:
                self.ongoing[pid] = info.txn_first_offset
        self._first_ongoing = min(self.ongoing.values()) if self.ongoing else None

    def snapshot_bytes(self) -> bytes:
        """The snapshot file's bytes for the current state."""
        body = bytearray(_COUNT.pack(len(self.producers)))
        for pid, i in self.producers.items():
            body += _SNAP_ENTRY.pack(
                pid, i.epoch, i.last_sequence, i.last_offset, i.offset_delta,
                i.last_timestamp, i.coordinator_epoch, i.txn_first_offset,
            )
        return _SNAP_HEAD.pack(_SNAPSHOT_VERSION, crc32c(bytes(body))) + bytes(body)


def snapshot_path(directory: Path, offset: int) -> Path:
    return directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"


def list_snapshots(directory: Path, names: list[str] | None = None) -> list[int]:
    """Offsets of the snapshot files in ``directory`` (or among ``names``), ascending."""
    out = []
    for name in os.listdir(directory) if names is None else names:
        if name.endswith(SNAPSHOT_SUFFIX):
            stem = name[: -len(SNAPSHOT_SUFFIX)]
            if len(stem) == 20 and stem.isdigit():
                out.append(int(stem))
    out.sort()
    return out


def write_snapshot(
    directory: Path, offset: int, data: bytes | ProducerTxnState, publish: Callable[[Path, Path], bool] | None = None,
) -> Path | None:
    """Write ``data`` (a state's :meth:`~ProducerTxnState.snapshot_bytes`) as the
    snapshot at ``offset``, durably: to a temporary file, fsynced, renamed into place,
    the directory fsynced (Kafka fsyncs its snapshot file too). A crash at any moment
    leaves either no snapshot at ``offset`` or a complete one, never a torn one.

    ``publish(tmp, path)`` does the rename (and may refuse: False, the temporary file
    is removed, None returned); by default a plain :func:`os.replace`. Blocking: call
    it off the event loop."""
    if isinstance(data, ProducerTxnState):
        data = data.snapshot_bytes()
    path = snapshot_path(directory, offset)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if publish is None:
        os.replace(tmp, path)
    elif not publish(tmp, path):
        tmp.unlink(missing_ok=True)
        return None
    fsync_dir(directory)
    return path


class CorruptSnapshotError(ValueError):
    """A snapshot file that does not parse or whose CRC does not match."""


def read_snapshot(path: Path) -> dict[int, ProducerInfo]:
    """The producers a snapshot file holds; raises CorruptSnapshotError."""
    data = path.read_bytes()
    if len(data) < _SNAP_HEAD.size + _COUNT.size:
        raise CorruptSnapshotError(f"{path} is too short")
    version, crc = _SNAP_HEAD.unpack_from(data, 0)
    if version != _SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"{path} has unknown version {version}")
    body = data[_SNAP_HEAD.size:]
    if crc32c(body) != crc:
        raise CorruptSnapshotError(f"{path} fails its CRC")
    (count,) = _COUNT.unpack_from(body, 0)
    if count < 0 or _COUNT.size + count * _SNAP_ENTRY.size != len(body):
        raise CorruptSnapshotError(f"{path} has a wrong size for {count} entries")
    out = {}
    for i in range(count):
        pid, epoch, seq, last, delta, ts, coord, txn_first = _SNAP_ENTRY.unpack_from(
            body, _COUNT.size + i * _SNAP_ENTRY.size
        )
        out[pid] = ProducerInfo(epoch, seq, last, delta, ts, coord, txn_first)
    return out


def completed_to_aborted(txn: CompletedTxn, last_stable_offset: int) -> AbortedTxn:
    return AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset, last_stable_offset)
