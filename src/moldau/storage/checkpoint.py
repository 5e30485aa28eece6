"""Data-directory checkpoint files and the clean-shutdown marker.

Offset checkpoints
------------------
``recovery-point-offset-checkpoint`` and ``log-start-offset-checkpoint`` sit at the
top of a data directory and use Kafka's text format (server-common
``CheckpointFile`` with the ``OffsetCheckpointFile`` entry formatter), UTF-8, ``\\n``
line ends::

    0                      <- format version
    2                      <- number of entries
    orders 0 1234          <- "topic partition offset", one per line
    orders 1 99

Reading follows Kafka: an empty file means no entries; a wrong version, a
malformed line or a count that does not match the lines is an error
(:class:`~moldau.storage.errors.CorruptCheckpointError`).

Writes are atomic: the text goes to ``<name>.tmp``, which is fsynced, renamed over
``<name>`` and the directory fsynced, so a crash leaves either the old or the new
file, never a torn one.

Clean-shutdown marker
---------------------
One ``.kafka_cleanshutdown`` file per data directory (Kafka 3's name and place). Its
presence at startup means every log in the directory was flushed and closed, so no
segment needs a scan. Content is Kafka's small JSON object
(``{"version":"0","broker_epoch":"-1"}``); only the file's existence matters here.
The log manager deletes it right after loading, so a later kill -9 is detected.

Thread-safety: each :class:`OffsetCheckpointFile` serialises its own writes with a
lock, so a periodic checkpointer thread and shutdown may both call ``write``.
Readers and writers of the marker are expected to be the log manager alone.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from moldau.storage.errors import CorruptCheckpointError

__all__ = [
    "CLEAN_SHUTDOWN_FILE",
    "LOG_START_OFFSET_CHECKPOINT",
    "RECOVERY_POINT_CHECKPOINT",
    "CleanShutdownFile",
    "OffsetCheckpointFile",
    "atomic_write",
    "fsync_dir",
]

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"

_VERSION = 0


def fsync_dir(path: Path) -> None:
    """fsync a directory so that entries created, renamed or removed in it persist."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class OffsetCheckpointFile:
    """A ``topic partition offset`` checkpoint file in Kafka's format (see module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, entries: Mapping[tuple[str, int], int]) -> None:
        """Atomically replace the file with ``entries`` (sorted, for stable diffs)."""
        lines = [str(_VERSION), str(len(entries))]
        for (topic, partition), offset in sorted(entries.items()):
            if not topic or any(c.isspace() for c in topic):
                raise ValueError(f"topic name {topic!r} cannot be written to a checkpoint")
            lines.append(f"{topic} {partition} {offset}")
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            atomic_write(self.path, data)

    def read(self) -> dict[tuple[str, int], int]:
        """Parse the file; a missing or empty file has no entries."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return parse_checkpoint(text, str(self.path))


def parse_checkpoint(text: str, location: str = "<checkpoint>") -> dict[tuple[str, int], int]:
    """Parse checkpoint text, raising CorruptCheckpointError on any deviation."""
    lines = text.splitlines()
    if not lines:
        return {}

    def malformed(line: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(f"Malformed line in checkpoint file [{location}]: {line}")

    def to_int(line: str) -> int:
        try:
            return int(line)
        except ValueError:
            raise malformed(line) from None

    version = to_int(lines[0])
    if version != _VERSION:
        raise CorruptCheckpointError(
            f"Unrecognised version: {version}, expected version: {_VERSION} "
            f"in checkpoint file at: {location}"
        )
    if len(lines) == 1:
        return {}
    expected = to_int(lines[1])
    entries: dict[tuple[str, int], int] = {}
    for line in lines[2:]:
        parts = line.split(" ")
        if len(parts) != 3 or not parts[0]:
            raise malformed(line)
        try:
            entries[(parts[0], int(parts[1]))] = int(parts[2])
        except ValueError:
            raise malformed(line) from None
    if len(lines) - 2 != expected:
        raise CorruptCheckpointError(
            f"Expected [{expected}] entries in checkpoint file [{location}], "
            f"but found only [{len(lines) - 2}]"
        )
    return entries


class CleanShutdownFile:
    """The ``.kafka_cleanshutdown`` marker of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / CLEAN_SHUTDOWN_FILE

    def exists(self) -> bool:
        """True when the previous run shut down cleanly."""
        return self.path.exists()

    def write(self, broker_epoch: int = -1) -> None:
        """Record a clean shutdown; durable before returning."""
        payload = {"version": str(_VERSION), "broker_epoch": str(broker_epoch)}
        atomic_write(self.path, json.dumps(payload, separators=(",", ":")).encode())

    def delete(self) -> None:
        """Forget the clean shutdown, durably, so that a crash from now on is detected."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.path.parent)


def offsets_of(items: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """Build a checkpoint mapping from ``(topic, partition, offset)`` triples."""
    return {(topic, partition): offset for topic, partition, offset in items}
