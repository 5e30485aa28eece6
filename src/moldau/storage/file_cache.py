"""A bounded LRU of open file handles shared by every log, and slices of those files.

Why: a broker with thousands of partitions has three files per segment; holding
them all open would exhaust the process's descriptors. Every open of a segment or
index file goes through one :class:`FileCache`, which keeps at most ``capacity``
handles. Evicting a handle only drops the cache's reference: a handle still in use
(an append in progress, a :class:`FileSlice` waiting in a socket's send queue)
stays open until its last reference goes away, then CPython's reference counting
closes it. A later ``get`` reopens the file.

Handles are unbuffered binary file objects (``io.FileIO``, mode ``r+b``). Because
one object is shared by every user of the file, callers must use positional I/O
(``os.pread``/``os.pwrite``/``os.sendfile`` with an explicit offset) and never
``seek`` + ``read``: the file position is shared state.

Code that needs a descriptor must keep the file object referenced for as long as
it uses ``fileno()``: ``os.fsync(cache.get(p).fileno())`` is fine, but keeping the
int and dropping the object is not, because an eviction may then close the
descriptor under it.

File format: none.

Thread-safety: :class:`FileCache` is safe to use from several threads (the event
loop appends and reads, a worker thread flushes); a lock guards the LRU.
:class:`FileSlice` is immutable.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["FileCache", "FileSlice"]


@dataclass(frozen=True, slots=True)
class FileSlice:
    """``size`` bytes of ``file`` from ``position``: whole record batches, zero-copy.

    The file object stays open while this slice is referenced, even if the cache
    evicts it or the segment is deleted. Send it with ``os.sendfile`` /
    ``loop.sendfile`` or read it with :meth:`read` (positional, so safe to share).
    """

    file: BinaryIO
    position: int
    size: int

    def read(self) -> bytes:
        """Copy the slice's bytes (for TLS connections and tests)."""
        fd = self.file.fileno()
        chunks: list[bytes] = []
        done = 0
        while done < self.size:
            chunk = os.pread(fd, self.size - done, self.position + done)
            if not chunk:
                raise EOFError(f"file ended {self.size - done} bytes before the slice's end")
            chunks.append(chunk)
            done += len(chunk)
        return b"".join(chunks)


class FileCache:
    """An LRU of at most ``capacity`` open file objects keyed by path (see module doc)."""

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError("FileCache capacity must be at least 1")
        self.capacity = capacity
        self._files: OrderedDict[str, BinaryIO] = OrderedDict()
        self._lock = threading.Lock()
        #: Number of files opened since creation (misses), for metrics and tests.
        self.opens = 0

    def get(self, path: Path | str, *, create: bool = False) -> BinaryIO:
        """The open ``r+b`` handle of ``path``, opening it (and evicting the LRU) on a miss.

        With ``create`` a missing file is created empty; without it a missing file
        raises FileNotFoundError, so a vanished segment is noticed, not recreated.
        """
        key = os.fspath(path)
        with self._lock:
            f = self._files.get(key)
            if f is not None:
                self._files.move_to_end(key)
                return f
            flags = os.O_RDWR | (os.O_CREAT if create else 0)
            fd = os.open(key, flags, 0o644)
            f = open(fd, "r+b", buffering=0)  # noqa: SIM115 - lifetime managed by the cache
            self.opens += 1
            self._files[key] = f
            while len(self._files) > self.capacity:
                self._files.popitem(last=False)
            return f

    def evict(self, path: Path | str) -> None:
        """Drop the cache's reference to ``path`` (e.g. before the file is deleted)."""
        with self._lock:
            self._files.pop(os.fspath(path), None)

    def evict_all(self, paths: Iterable[Path | str]) -> None:
        """Drop several paths at once."""
        with self._lock:
            for path in paths:
                self._files.pop(os.fspath(path), None)

    def evict_under(self, directory: Path | str) -> None:
        """Drop every cached file inside ``directory`` (a log being closed or renamed)."""
        prefix = os.path.join(os.fspath(directory), "")
        with self._lock:
            for key in [k for k in self._files if k.startswith(prefix)]:
                del self._files[key]

    def clear(self) -> None:
        """Drop every reference (shutdown)."""
        with self._lock:
            self._files.clear()

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        return os.fspath(path) in self._files
