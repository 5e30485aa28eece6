"""The sparse time index of a segment: ``<base offset, 20 digits>.timeindex``.

File format (Kafka's ``TimeIndex``): a sequence of 12-byte entries, big-endian::

    timestamp:       int64   # largest record timestamp seen up to ...
    relative_offset: int32   # ... this offset (minus the segment base offset)

An entry ``(T, O)`` says that no record before offset ``O`` (exclusive of the
batch holding ``O``) has a timestamp above ``T``; any record with a timestamp
greater than ``T`` comes after ``O``'s batch. Timestamps are strictly increasing
and offsets non-decreasing: an entry is only added when the segment's maximum
timestamp grew. Entries are added alongside offset-index entries (one per
``index.interval.bytes``) and once more when the segment stops being active or is
closed, so the last entry holds the segment's largest timestamp; retention by time
and ``offset_for_timestamp`` rely on that.

The capacity is ``segment.index.bytes // 12`` entries, with the last slot reserved
for that final entry (so "full" is one short, as in Kafka).

Thread-safety: as :mod:`.offset_index`: owner thread mutates, :meth:`flush` may run
on a flusher thread.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

from moldau.storage._index import IndexFile
from moldau.storage.errors import CorruptIndexError
from moldau.storage.file_cache import FileCache

__all__ = ["NO_TIMESTAMP", "TimeIndex"]

#: Kafka's ``RecordBatch.NO_TIMESTAMP``.
NO_TIMESTAMP = -1

_ENTRY = struct.Struct(">qi")


class TimeIndex(IndexFile):
    """Maps timestamps to offsets for one segment (see module docstring)."""

    ENTRY_SIZE = 12

    def __init__(self, path: Path, base_offset: int, max_index_size: int, cache: FileCache) -> None:
        super().__init__(path, base_offset, max_index_size, cache)
        self._ts = array("q")
        self._rel = array("i")

    @classmethod
    def create(
        cls, path: Path, base_offset: int, max_index_size: int, cache: FileCache
    ) -> TimeIndex:
        """A new, empty index; an existing file at ``path`` is truncated."""
        index = cls(path, base_offset, max_index_size, cache)
        index._truncate_entries(0)
        return index

    @classmethod
    def load(cls, path: Path, base_offset: int, max_index_size: int, cache: FileCache) -> TimeIndex:
        """Read an existing file; FileNotFoundError or CorruptIndexError when unusable."""
        data = path.read_bytes()
        if len(data) % cls.ENTRY_SIZE:
            raise CorruptIndexError(
                f"time index file {path} has {len(data)} bytes, not a multiple of 12"
            )
        index = cls(path, base_offset, max_index_size, cache)
        pairs = list(_ENTRY.iter_unpack(data))
        index._ts = array("q", (t for t, _ in pairs))
        index._rel = array("i", (r for _, r in pairs))
        return index

    def sanity_check(self, next_offset: int) -> None:
        """Raise CorruptIndexError unless entries increase and stay below ``next_offset``."""
        ts, rel = self._ts, self._rel
        if not ts:
            return
        if rel[0] < 0 or self.base_offset + rel[-1] >= max(next_offset, self.base_offset + 1):
            raise CorruptIndexError(f"time index {self.path} points outside its segment")
        if any(a >= b for a, b in zip(ts, ts[1:], strict=False)) or any(
            a > b for a, b in zip(rel, rel[1:], strict=False)
        ):
            raise CorruptIndexError(f"time index {self.path} entries are not increasing")

    @property
    def entries(self) -> int:
        """Number of entries."""
        return len(self._ts)

    @property
    def is_full(self) -> bool:
        """True when only the slot reserved for the final entry is left."""
        return len(self._ts) >= self.max_entries - 1

    @property
    def last_entry(self) -> tuple[int, int]:
        """``(timestamp, offset)`` of the last entry, or ``(-1, base_offset)`` when empty."""
        if not self._ts:
            return NO_TIMESTAMP, self.base_offset
        return self._ts[-1], self.base_offset + self._rel[-1]

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """The entry with the largest timestamp <= ``timestamp``, else ``(-1, base_offset)``."""
        slot = bisect_right(self._ts, timestamp) - 1
        if slot < 0:
            return NO_TIMESTAMP, self.base_offset
        return self._ts[slot], self.base_offset + self._rel[slot]

    def to_list(self) -> list[tuple[int, int]]:
        """All entries as ``(timestamp, offset)`` (tests and tools)."""
        return [(t, self.base_offset + r) for t, r in zip(self._ts, self._rel, strict=True)]

    def maybe_append(self, timestamp: int, offset: int, *, skip_full_check: bool = False) -> None:
        """Append ``(timestamp, offset)`` if ``timestamp`` is larger than the last one.

        ``skip_full_check`` is for the final entry written on roll and close, which
        uses the slot :attr:`is_full` keeps free.
        """
        if not skip_full_check and self.is_full:
            raise ValueError(f"attempt to append to a full time index {self.path}")
        last_ts, last_offset = self.last_entry
        if self._ts and offset < last_offset:
            raise ValueError(
                f"time index offset {offset} is below the last entry's {last_offset} in {self.path}"
            )
        if timestamp <= last_ts or len(self._ts) >= self.max_entries:
            return
        rel = self.relative(offset)
        self._write_at(len(self._ts), _ENTRY.pack(timestamp, rel))
        self._ts.append(timestamp)
        self._rel.append(rel)

    def replace(self, entries: list[tuple[int, int]]) -> None:
        """Replace all entries with ``(timestamp, offset)`` pairs in one write (recovery)."""
        ts = array("q", (t for t, _ in entries))
        rel = array("i", (self.relative(o) for _, o in entries))
        self._truncate_entries(0)
        if entries:
            self._write_at(0, b"".join(_ENTRY.pack(t, r) for t, r in zip(ts, rel, strict=True)))
        self._ts, self._rel = ts, rel

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose offset is >= ``offset``."""
        keep = bisect_left(self._rel, offset - self.base_offset)
        if keep < len(self._rel):
            del self._ts[keep:]
            del self._rel[keep:]
            self._truncate_entries(keep)

    def reset(self) -> None:
        """Remove every entry."""
        self._ts = array("q")
        self._rel = array("i")
        self._truncate_entries(0)
