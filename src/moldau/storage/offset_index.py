"""The sparse offset index of a segment: ``<base offset, 20 digits>.index``.

File format (Kafka's ``OffsetIndex``): a sequence of 8-byte entries, big-endian::

    relative_offset: int32   # offset - segment base offset
    position:        int32   # byte position of a record batch in the .log file

An entry ``(offset, position)`` says that the batch starting at ``position`` ends
at ``offset`` (the batch's last offset), so every batch holding an offset greater
than ``offset`` starts at or after ``position``. Entries are strictly increasing
in both fields. One entry is added per ``index.interval.bytes`` of log appended,
which keeps the index small (one entry per 4 KiB by default); a lookup finds the
nearest entry at or below the target and the caller walks batch headers from there.

The capacity is ``segment.index.bytes // 8`` entries; a full index makes the log
roll a new segment. The file holds exactly the valid entries (see :mod:`._index`).

Thread-safety: mutated only by the log's owner thread; :meth:`flush` may run on a
flusher thread. Lookups read the in-memory arrays and never touch the file.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

from moldau.storage._index import IndexFile
from moldau.storage.errors import CorruptIndexError
from moldau.storage.file_cache import FileCache

__all__ = ["OffsetIndex"]

_ENTRY = struct.Struct(">ii")


class OffsetIndex(IndexFile):
    """Maps offsets to file positions for one segment (see module docstring)."""

    ENTRY_SIZE = 8

    def __init__(self, path: Path, base_offset: int, max_index_size: int, cache: FileCache) -> None:
        super().__init__(path, base_offset, max_index_size, cache)
        self._rel = array("i")
        self._pos = array("i")

    # -- construction ---------------------------------------------------------

    @classmethod
    def create(
        cls, path: Path, base_offset: int, max_index_size: int, cache: FileCache
    ) -> OffsetIndex:
        """A new, empty index; an existing file at ``path`` is truncated."""
        index = cls(path, base_offset, max_index_size, cache)
        index._truncate_entries(0)
        return index

    @classmethod
    def load(
        cls, path: Path, base_offset: int, max_index_size: int, cache: FileCache
    ) -> OffsetIndex:
        """Read an existing index file; FileNotFoundError or CorruptIndexError when unusable."""
        data = path.read_bytes()
        if len(data) % cls.ENTRY_SIZE:
            raise CorruptIndexError(
                f"index file {path} has {len(data)} bytes, not a multiple of {cls.ENTRY_SIZE}"
            )
        index = cls(path, base_offset, max_index_size, cache)
        both = array("i")
        both.frombytes(data)
        if sys.byteorder == "little":
            both.byteswap()
        index._rel = both[0::2]
        index._pos = both[1::2]
        return index

    def sanity_check(self, log_size: int) -> None:
        """Raise CorruptIndexError unless entries are increasing and inside the log."""
        rel, pos = self._rel, self._pos
        if not rel:
            return
        if rel[0] < 0 or pos[0] < 0 or pos[-1] >= log_size:
            raise CorruptIndexError(f"index {self.path} points outside its segment")
        if any(a >= b for a, b in zip(rel, rel[1:], strict=False)) or any(
            a >= b for a, b in zip(pos, pos[1:], strict=False)
        ):
            raise CorruptIndexError(f"index {self.path} entries are not increasing")

    # -- queries ----------------------------------------------------------------

    @property
    def entries(self) -> int:
        """Number of entries."""
        return len(self._rel)

    @property
    def is_full(self) -> bool:
        """True when no further entry fits in ``segment.index.bytes``."""
        return len(self._rel) >= self.max_entries

    @property
    def last_offset(self) -> int:
        """The offset of the last entry, or the base offset when empty."""
        return self.base_offset + self._rel[-1] if self._rel else self.base_offset

    @property
    def last_position(self) -> int:
        """The position of the last entry, or 0 when empty."""
        return self._pos[-1] if self._pos else 0

    def lookup(self, offset: int) -> tuple[int, int]:
        """The entry with the largest offset <= ``offset``, or ``(base_offset, 0)``."""
        slot = bisect_right(self._rel, offset - self.base_offset) - 1
        if slot < 0:
            return self.base_offset, 0
        return self.base_offset + self._rel[slot], self._pos[slot]

    def floor_position(self, position: int) -> int:
        """The largest indexed batch position <= ``position`` (0 when none).

        Every indexed position starts a batch, so this is a batch boundary from
        which header walking can resume.
        """
        slot = bisect_right(self._pos, position) - 1
        return self._pos[slot] if slot >= 0 else 0

    def ceiling_offset(self, position: int) -> int | None:
        """The offset of the first indexed batch at or after ``position``, or None
        (Kafka's ``fetchUpperBoundOffset``: an upper bound of the offsets before it)."""
        slot = bisect_left(self._pos, position)
        return self.base_offset + self._rel[slot] if slot < len(self._pos) else None

    def to_list(self) -> list[tuple[int, int]]:
        """All entries as ``(offset, position)`` (tests and tools)."""
        return [(self.base_offset + r, p) for r, p in zip(self._rel, self._pos, strict=True)]

    # -- mutation ---------------------------------------------------------------

    def append(self, offset: int, position: int) -> None:
        """Add an entry; offsets and positions must increase and the index not be full."""
        if self.is_full:
            raise ValueError(f"attempt to append to a full index {self.path}")
        rel = self.relative(offset)
        if self._rel and (rel <= self._rel[-1] or position <= self._pos[-1]):
            raise ValueError(
                f"index entry ({offset}, {position}) is not after the last entry "
                f"({self.last_offset}, {self.last_position}) in {self.path}"
            )
        self._write_at(len(self._rel), _ENTRY.pack(rel, position))
        self._rel.append(rel)
        self._pos.append(position)

    def replace(self, entries: list[tuple[int, int]]) -> None:
        """Replace all entries with ``(offset, position)`` pairs in one write (recovery)."""
        rel = array("i", (self.relative(o) for o, _ in entries))
        pos = array("i", (p for _, p in entries))
        data = array("i", [0]) * (2 * len(rel))
        data[0::2] = rel
        data[1::2] = pos
        if sys.byteorder == "little":
            data.byteswap()
        self._truncate_entries(0)
        if data:
            self._write_at(0, data.tobytes())
        self._rel, self._pos = rel, pos

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose offset is >= ``offset``."""
        keep = bisect_left(self._rel, offset - self.base_offset)
        if keep < len(self._rel):
            del self._rel[keep:]
            del self._pos[keep:]
            self._truncate_entries(keep)

    def reset(self) -> None:
        """Remove every entry."""
        self._rel = array("i")
        self._pos = array("i")
        self._truncate_entries(0)
