"""File plumbing shared by :mod:`.offset_index` and :mod:`.time_index`.

Both indexes keep their entries in memory (``array`` module, native ints) and write
every change through to their file at ``entries * entry_size`` with ``os.pwrite``,
so the file always holds exactly the valid entries (no preallocation, no mmap). A
file that Kafka preallocated and left untrimmed after a crash fails the sanity
checks and is rebuilt from its segment.

Thread-safety: appends, truncations and resets happen on the log's owner thread;
:meth:`IndexFile.flush` may run concurrently on a flusher thread (it only fsyncs).
"""

from __future__ import annotations

import os
from pathlib import Path

from moldau.storage.file_cache import FileCache

__all__ = ["INT32_MAX", "IndexFile"]

INT32_MAX = 2**31 - 1


class IndexFile:
    """An index file written through the shared :class:`FileCache`."""

    ENTRY_SIZE: int = 0

    def __init__(self, path: Path, base_offset: int, max_index_size: int, cache: FileCache) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_index_size = max_index_size
        #: Capacity in entries; Kafka rounds the size down to whole entries.
        self.max_entries = max_index_size // self.ENTRY_SIZE
        self._cache = cache

    def _write_at(self, entry_number: int, data: bytes) -> None:
        f = self._cache.get(self.path, create=True)
        offset = entry_number * self.ENTRY_SIZE
        view = memoryview(data)
        while view:
            written = os.pwrite(f.fileno(), view, offset)
            view = view[written:]
            offset += written

    def _truncate_entries(self, entries: int) -> None:
        f = self._cache.get(self.path, create=True)
        os.ftruncate(f.fileno(), entries * self.ENTRY_SIZE)

    def flush(self) -> None:
        """fsync the index file (no-op when it was never written)."""
        try:
            f = self._cache.get(self.path)
        except FileNotFoundError:
            return
        os.fsync(f.fileno())

    def delete(self) -> None:
        """Forget the file handle and remove the file."""
        self._cache.evict(self.path)
        self.path.unlink(missing_ok=True)

    def relative(self, offset: int) -> int:
        """``offset - base_offset``, checked to fit the int32 stored on disk."""
        rel = offset - self.base_offset
        if not 0 <= rel <= INT32_MAX:
            raise ValueError(
                f"offset {offset} cannot be stored relative to base offset {self.base_offset}"
            )
        return rel

    def can_append_offset(self, offset: int) -> bool:
        """True when ``offset`` fits this segment's relative-offset range."""
        return 0 <= offset - self.base_offset <= INT32_MAX
