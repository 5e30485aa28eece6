"""The aborted transactions index: ``<base offset, 20 digits>.txnindex`` per segment.

File format (Kafka's ``TransactionIndex``/``AbortedTxn``): fixed 34-byte entries laid
end to end, no file header, big-endian::

    version:int16 (0)  producer_id:int64  first_offset:int64  last_offset:int64
    last_stable_offset:int64

One entry per *aborted* transaction that had data in the partition, appended to the
``.txnindex`` of the segment holding its abort marker when the marker is appended:
``first_offset`` is the transaction's first data offset, ``last_offset`` the marker's
offset, ``last_stable_offset`` the partition's LSO just after the marker (Kafka uses it
to stop a search early: no later entry can start below it). Entries are in marker
order, so ``last_offset`` increases through a file and from one segment's file to the
next. A torn trailing entry (a crash mid-write) is ignored on read.

:class:`AbortedTxnIndex` keeps every entry of a log in memory (34 bytes on disk, one
tuple each: aborted transactions are few next to records) so a read_committed fetch
collects its aborted transactions without I/O, and writes through to the files. The
files are what survives a restart; :class:`~moldau.storage.log.Log` rebuilds the
entries of the replayed tail in recovery (see :mod:`.txn_state`).

Thread-safety: owned by the log's thread (the event loop), like the log.
"""

from __future__ import annotations

import contextlib
import os
import struct
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import NamedTuple

__all__ = ["TXN_INDEX_SUFFIX", "AbortedTxn", "AbortedTxnIndex", "read_txn_index", "write_txn_index"]

TXN_INDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size
assert ENTRY_SIZE == 34
_VERSION = 0


class AbortedTxn(NamedTuple):
    """One aborted transaction (Kafka's ``AbortedTxn``)."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int

    def encode(self) -> bytes:
        return _ENTRY.pack(_VERSION, *self)


def txn_index_path(directory: Path, base_offset: int, suffix: str = "") -> Path:
    return directory / f"{base_offset:020d}{TXN_INDEX_SUFFIX}{suffix}"


def read_txn_index(path: Path) -> list[AbortedTxn]:
    """The whole entries of ``path`` ([] when it does not exist)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for pos in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
        version, *fields = _ENTRY.unpack_from(data, pos)
        if version != _VERSION:
            break
        out.append(AbortedTxn(*fields))
    return out


def write_txn_index(path: Path, entries: list[AbortedTxn]) -> None:
    """Replace ``path`` with ``entries`` (by rename); removes it when there are none."""
    if not entries:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"".join(e.encode() for e in entries))
    os.replace(tmp, path)


class AbortedTxnIndex:
    """The aborted transactions of one log, in marker order, and their files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        #: (segment base, entry), in marker order
        self._entries: list[AbortedTxn] = []
        self._bases: list[int] = []
        self._last_offsets: list[int] = []

    @classmethod
    def load(cls, directory: Path, segment_bases: list[int], present: set[int] | None = None) -> AbortedTxnIndex:
        """Read the ``.txnindex`` files of ``segment_bases`` (oldest first); ``present``:
        the bases known to have one (saves a failed open per segment without)."""
        index = cls(directory)
        for base in segment_bases:
            if present is not None and base not in present:
                continue
            for entry in read_txn_index(txn_index_path(directory, base)):
                if index._last_offsets and entry.last_offset <= index._last_offsets[-1]:
                    continue  # out of order: a stale file; recovery rewrites it
                index._entries.append(entry)
                index._bases.append(base)
                index._last_offsets.append(entry.last_offset)
        return index

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[AbortedTxn]:
        return list(self._entries)

    def append(self, segment_base: int, entry: AbortedTxn) -> None:
        """Record an abort marker just appended to the segment at ``segment_base``."""
        self._entries.append(entry)
        self._bases.append(segment_base)
        self._last_offsets.append(entry.last_offset)
        fd = os.open(txn_index_path(self.dir, segment_base), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, entry.encode())
        finally:
            os.close(fd)

    def collect(self, fetch_offset: int, upper_bound: int, *, from_thread: bool = False) -> list[AbortedTxn]:
        """Aborted transactions overlapping ``[fetch_offset, upper_bound)`` (Kafka's
        ``collectAbortedTxns``): marker at or after the fetch offset, data starting
        below the bound; the search stops at the first entry whose LSO reaches the bound.
        ``from_thread``: the caller is not the owner (the log cleaner); it works on
        copies of the lists (each copied atomically), so a concurrent append or
        truncation cannot break the walk."""
        out = []
        entries, last_offsets = self._entries, self._last_offsets
        if from_thread:
            entries, last_offsets = list(entries), list(last_offsets)
            n = min(len(entries), len(last_offsets))
            entries, last_offsets = entries[:n], last_offsets[:n]
        for i in range(bisect_left(last_offsets, fetch_offset), len(entries)):
            entry = entries[i]
            if entry.first_offset < upper_bound:
                out.append(entry)
            if entry.last_stable_offset >= upper_bound:
                break
        return out

    def truncate_from(self, offset: int) -> None:
        """Forget the entries whose marker is at or after ``offset`` (log truncation,
        or the tail a recovery replays) and rewrite the files that held them."""
        cut = bisect_left(self._last_offsets, offset)
        if cut == len(self._entries):
            return
        touched = set(self._bases[cut:])
        del self._entries[cut:], self._bases[cut:], self._last_offsets[cut:]
        for base in touched:
            self._rewrite(base)

    def drop_segments_below(self, base_offset: int) -> None:
        """Forget the entries of segments below ``base_offset`` (deleted segments:
        their files went with them)."""
        cut = bisect_left(self._bases, base_offset)
        del self._entries[:cut], self._bases[:cut], self._last_offsets[:cut]

    def replace_segments(self, first_base: int, end_offset: int, keep: set[int] | None = None) -> None:
        """The segments from ``first_base`` up to ``end_offset`` became one (the cleaner):
        their entries now belong to ``first_base``'s file, which is rewritten; with
        ``keep``, only the entries whose producer's marker offsets are in it remain."""
        lo = bisect_left(self._last_offsets, first_base)
        hi = bisect_right(self._last_offsets, end_offset - 1)
        kept = [e for e in self._entries[lo:hi] if keep is None or e.last_offset in keep]
        self._entries[lo:hi] = kept
        self._bases[lo:hi] = [first_base] * len(kept)
        self._last_offsets[lo:hi] = [e.last_offset for e in kept]
        self._rewrite(first_base)

    def _rewrite(self, base: int) -> None:
        mine = [e for e, b in zip(self._entries, self._bases, strict=True) if b == base]
        with contextlib.suppress(FileNotFoundError):
            write_txn_index(txn_index_path(self.dir, base), mine)
