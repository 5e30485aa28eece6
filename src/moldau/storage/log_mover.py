"""Copying a live log to another filesystem (AlterReplicaLogDirs across disks).

Theory of operation: a :class:`LogCopy` stages the log's files in a hidden directory
of the destination (``<topic>-<partition>.<uuid>-delete``, so a crash mid-copy leaves
only something the next load deletes) while the log keeps taking writes. Each
:meth:`LogCopy.step` brings the staging up to date: files new or changed since the
last step are copied -- a segment ``.log`` that only grew (same inode) by its tail,
anything else whole -- and files gone are removed; every file written is fsynced.
Steps run on a worker thread until little is left; the owner then closes the log, runs
a last step (nothing changes any more; index files, written through memory maps that
need not touch their modification time, are copied whole), renames the staging into place and reopens the
log there (:meth:`moldau.storage.log_manager.LogManager.finish_copy`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

#: (inode, size, mtime) of a file as last copied
Stamp = tuple[int, int, int]

_CHUNK = 1 << 20


class LogCopy:
    """The staged copy of one log directory into another log directory."""

    def __init__(self, source: Path, destination_dir: Path) -> None:
        self.source = source
        self.destination_dir = destination_dir
        self.staging = destination_dir / f"{source.name}.{uuid.uuid4().hex}-delete"
        self.copied: dict[str, Stamp] = {}

    @property
    def target(self) -> Path:
        return self.destination_dir / self.source.name

    def step(self, final: bool = False) -> int:
        """Copy what changed since the last step; the bytes copied (any thread).

        ``final`` (the log closed): every file but the segments is copied again, since
        index files are written through memory maps, whose writes need not move the
        file's modification time."""
        self.staging.mkdir(exist_ok=True)
        present: set[str] = set()
        total = 0
        for entry in os.scandir(self.source):
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            present.add(entry.name)
            before = self.copied.get(entry.name)
            if before == stamp and not (final and not entry.name.endswith(".log")):
                continue
            if final and not entry.name.endswith(".log"):
                before = None
            try:
                total += _copy(Path(entry.path), self.staging / entry.name, before, stamp)
            except FileNotFoundError:  # deleted meanwhile (retention, a roll's rename)
                present.discard(entry.name)
                continue
            self.copied[entry.name] = stamp
        for name in [n for n in self.copied if n not in present]:
            (self.staging / name).unlink(missing_ok=True)
            del self.copied[name]
        return total

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _copy(source: Path, target: Path, before: Stamp | None, now: Stamp) -> int:
    appended = before is not None and before[0] == now[0] and source.suffix == ".log" and now[1] >= before[1]
    start = before[1] if appended and before is not None else 0
    copied = 0
    with open(source, "rb") as src, open(target, "r+b" if appended else "wb") as dst:
        src.seek(start)
        dst.seek(start)
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            copied += len(chunk)
        dst.truncate()
        dst.flush()
        os.fsync(dst.fileno())
    return copied
