"""All logs of the broker's log directories: loading, creation, deletion, moves between
directories, checkpoints, shutdown.

Kafka's ``log.dirs`` (JBOD): several directories, each laid out as below with its own
checkpoints, clean-shutdown marker and lock. A new log goes to the directory holding
the fewest logs (Kafka's LogManager.nextLogDirs); :meth:`LogManager.move_log` moves one
between directories (AlterReplicaLogDirs). With one directory (the default: the data
directory) nothing differs.

Log directory format::

    <data_dir>/
        recovery-point-offset-checkpoint     Kafka text checkpoint (see checkpoint.py)
        log-start-offset-checkpoint          Kafka text checkpoint
        .kafka_cleanshutdown                 present only between a clean shutdown
                                             and the next load
        <topic>-<partition>/                 one Log (see log.py)
        <topic>-<partition>.<uuid hex>-delete/   a deleted log awaiting removal

The clean-shutdown marker is one file per data directory (Kafka 3's name and
place): :meth:`LogManager.shutdown` flushes every log, writes both checkpoints,
closes the logs and only then writes the marker; :meth:`LogManager.load` reads it,
opens every log (recovering them all from their recovery points if the marker was
missing) and then deletes it, so that a kill -9 from then on is detected.

Deleting a topic renames its directories to ``<topic>-<partition>.<uuid>-delete``
at once (the name is free for a new topic immediately, and a crash leaves a
directory that the next load deletes) and removes the files on a background
thread.

Thread-safety: the owner thread (the broker's event loop, or a thread it delegates
``load``/``shutdown`` to) calls everything, except :meth:`LogManager.flush_dirty`
and :meth:`LogManager.checkpoint`, which a periodic worker thread may call
concurrently: they work on a snapshot of the log table.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from moldau.storage.checkpoint import (
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    CleanShutdownFile,
    OffsetCheckpointFile,
    fsync_dir,
)
from moldau.storage.config import LogConfig
from moldau.storage.errors import CorruptCheckpointError, DataDirLockedError
from moldau.storage.file_cache import FileCache
from moldau.storage.log import Log, parse_topic_partition
from moldau.storage.log_mover import LogCopy

#: logs closed at once at a clean shutdown
CLOSE_THREADS = 8

__all__ = ["LogManager"]

_log = logging.getLogger(__name__)

_DELETE_SUFFIX = "-delete"
_MAX_FILE_NAME = 255
_LOCK_FILE = ".lock"


class _LogDir:
    """One log directory: its path, checkpoint files, clean-shutdown marker and lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recovery_points = OffsetCheckpointFile(path / RECOVERY_POINT_CHECKPOINT)
        self.log_start_offsets = OffsetCheckpointFile(path / LOG_START_OFFSET_CHECKPOINT)
        self.clean_shutdown_file = CleanShutdownFile(path)
        self.lock_fd: int | None = None


class LogManager:
    """Owns every :class:`Log` under its log directories and the shared :class:`FileCache`."""

    def __init__(
        self, data_dir: Path | Sequence[Path], default_config: LogConfig, *, max_open_files: int = 1000
    ) -> None:
        paths = [Path(data_dir)] if isinstance(data_dir, str | os.PathLike) else [Path(p) for p in data_dir]
        if not paths:
            raise ValueError("at least one log directory is needed")
        self.dirs = [_LogDir(p) for p in paths]
        #: the first log directory (the cleaner keeps its checkpoint there)
        self.data_dir = paths[0]
        self.default_config = default_config
        self.file_cache = FileCache(max_open_files)
        self._logs: dict[tuple[str, int], Log] = {}
        self._topic_configs: dict[str, LogConfig] = {}
        self._deleters: list[threading.Thread] = []
        self._checkpoint_lock = threading.Lock()
        #: Whether the last :meth:`load` found the clean-shutdown marker (in every directory).
        self.had_clean_shutdown: bool | None = None

    # -- loading ----------------------------------------------------------------------

    def lock(self) -> None:
        """Take each log directory's ``.lock`` (flock), as Kafka does: two brokers writing
        one directory would corrupt it. Raises DataDirLockedError when one is taken."""
        for d in self.dirs:
            d.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(d.path / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DataDirLockedError(
                    f"data directory {d.path} is in use by another broker process"
                ) from None
            d.lock_fd = fd

    def load(self, topic_configs: Mapping[str, LogConfig] | None = None) -> None:
        """Open every log in the log directories, recovering them after an unclean stop.

        The broker takes :meth:`lock` first; tests that simulate a crash by opening a
        second manager in one process skip it.
        """
        if topic_configs:
            self._topic_configs.update(topic_configs)
        all_clean = True
        for d in self.dirs:
            d.path.mkdir(parents=True, exist_ok=True)
            clean = d.clean_shutdown_file.exists()
            all_clean = all_clean and clean
            self._load_dir(d, clean)
        self.had_clean_shutdown = all_clean

    def _load_dir(self, d: _LogDir, clean: bool) -> None:
        recovery_points = self._read_checkpoint(d.recovery_points)
        start_offsets = self._read_checkpoint(d.log_start_offsets)
        leftovers: list[Path] = []
        for entry in sorted(os.scandir(d.path), key=lambda e: e.name):
            if not entry.is_dir():
                continue
            if entry.name.endswith(_DELETE_SUFFIX):
                leftovers.append(Path(entry.path))
                continue
            parsed = parse_topic_partition(entry.name)
            if parsed is None:
                _log.warning("ignoring directory %s: not <topic>-<partition>", entry.path)
                continue
            if parsed in self._logs:
                _log.error("ignoring %s: %s-%d is already loaded from %s", entry.path, *parsed,
                           self._logs[parsed].dir)
                continue
            topic, partition = parsed
            self._logs[parsed] = Log.open(
                Path(entry.path),
                self._topic_configs.get(topic, self.default_config),
                file_cache=self.file_cache,
                recovery_point=recovery_points.get(parsed, 0),
                log_start_offset=start_offsets.get(parsed, 0),
                clean_shutdown=clean,
            )
            _log.debug("loaded log %s-%d", topic, partition)
        d.clean_shutdown_file.delete()
        if leftovers:
            self._delete_in_background(leftovers)

    @staticmethod
    def _read_checkpoint(checkpoint: OffsetCheckpointFile) -> dict[tuple[str, int], int]:
        try:
            return checkpoint.read()
        except (CorruptCheckpointError, OSError, UnicodeDecodeError) as exc:
            # Kafka's choice too: an unreadable checkpoint means "recover from 0".
            _log.warning("ignoring unreadable checkpoint %s: %s", checkpoint.path, exc)
            return {}

    # -- the log table ------------------------------------------------------------------

    def get_log(self, topic: str, partition: int) -> Log | None:
        """The log of ``topic``-``partition`` if this data directory has it."""
        return self._logs.get((topic, partition))

    def create_log(self, topic: str, partition: int, config: LogConfig | None = None) -> Log:
        """The log of ``topic``-``partition``, created empty if it does not exist yet."""
        existing = self._logs.get((topic, partition))
        if existing is not None:
            return existing
        directory = self._next_dir().path / f"{topic}-{partition}"
        if parse_topic_partition(directory.name) != (topic, partition):
            raise ValueError(f"invalid topic name {topic!r} or partition {partition}")
        if config is not None:
            self._topic_configs[topic] = config
        log = Log.open(
            directory,
            config or self._topic_configs.get(topic, self.default_config),
            file_cache=self.file_cache,
            recovery_point=0,
            log_start_offset=0,
            clean_shutdown=True,
        )
        self._logs[(topic, partition)] = log
        return log

    def _next_dir(self) -> _LogDir:
        """Where a new log goes: the directory holding the fewest (Kafka's nextLogDirs)."""
        if len(self.dirs) == 1:
            return self.dirs[0]
        counts = {d.path: 0 for d in self.dirs}
        for log in self._logs.values():
            parent = Path(log.dir).parent
            if parent in counts:
                counts[parent] += 1
        return min(self.dirs, key=lambda d: counts[d.path])

    def dir_of(self, topic: str, partition: int) -> Path | None:
        """The log directory holding ``topic``-``partition``'s log, if any."""
        log = self._logs.get((topic, partition))
        return None if log is None else Path(log.dir).parent

    def move_log(self, topic: str, partition: int, destination: Path) -> Log:
        """Move a log to another of the log directories (AlterReplicaLogDirs) and return
        it reopened there. One step on the owner thread: flushed and closed, its
        directory renamed (same filesystem only: an O(1) rename, nothing copied), both
        directories fsynced, reopened, checkpoints written. The caller swaps the new
        :class:`Log` into whatever held the old one. OSError if the rename is impossible."""
        key = (topic, partition)
        log = self._logs[key]
        target_dir = next((d for d in self.dirs if d.path == Path(destination)), None)
        if target_dir is None:
            raise ValueError(f"{destination} is not a log directory")
        source = Path(log.dir)
        if source.parent == target_dir.path:
            return log
        if not self.same_filesystem(topic, partition, destination):
            raise OSError(f"cannot move {source} to {target_dir.path} by a rename: another filesystem")
        recovery_point, log_start = log.log_end_offset, log.log_start_offset
        log.close(flush=True)
        target = target_dir.path / source.name
        try:
            os.rename(source, target)
        except OSError:  # still where it was: reopened there (get_log has it), then the error
            self._logs[key] = Log.open(
                source, log.config, file_cache=self.file_cache, recovery_point=recovery_point,
                log_start_offset=log_start, clean_shutdown=True,
            )
            raise
        fsync_dir(source.parent)
        fsync_dir(target_dir.path)
        moved = Log.open(
            target, log.config, file_cache=self.file_cache, recovery_point=recovery_point,
            log_start_offset=log_start, clean_shutdown=True,
        )
        self._logs[key] = moved
        self.checkpoint()
        _log.info("moved log %s-%d from %s to %s", topic, partition, source.parent, target_dir.path)
        return moved

    def same_filesystem(self, topic: str, partition: int, destination: Path) -> bool:
        """Whether ``topic``-``partition`` can move to ``destination`` by a rename."""
        return os.stat(Path(self._logs[(topic, partition)].dir).parent).st_dev == os.stat(destination).st_dev

    def begin_copy(self, topic: str, partition: int, destination: Path) -> LogCopy:
        """Start moving a log to a log directory on another filesystem: the staged copy
        that :meth:`LogCopy.step` fills from a worker thread while the log stays live."""
        if not any(d.path == Path(destination) for d in self.dirs):
            raise ValueError(f"{destination} is not a log directory")
        return LogCopy(Path(self._logs[(topic, partition)].dir), Path(destination))

    def finish_copy(self, topic: str, partition: int, copy: LogCopy) -> Log:
        """(Owner thread.) Close the log, copy its last changes, put the copy in place,
        reopen it there and delete the old directory; the caller swaps the new
        :class:`Log` in. If anything fails the log is reopened where it was (get_log
        has it) and the error raised; the staging is removed either way."""
        key = (topic, partition)
        log = self._logs.get(key)
        if log is None or log.closed or Path(log.dir) != copy.source:
            copy.discard()
            raise OSError(f"{topic}-{partition} changed while it was being copied")
        recovery_point, log_start = log.log_end_offset, log.log_start_offset
        log.close(flush=True)
        try:
            copy.step(final=True)
            fsync_dir(copy.staging)
            os.rename(copy.staging, copy.target)
            fsync_dir(copy.destination_dir)
        except OSError:
            copy.discard()
            self._logs[key] = Log.open(
                copy.source, log.config, file_cache=self.file_cache, recovery_point=recovery_point,
                log_start_offset=log_start, clean_shutdown=True,
            )
            raise
        moved = Log.open(
            copy.target, log.config, file_cache=self.file_cache, recovery_point=recovery_point,
            log_start_offset=log_start, clean_shutdown=True,
        )
        self._logs[key] = moved
        self.checkpoint()
        old = copy.source.parent / f"{copy.source.name}.{uuid.uuid4().hex}{_DELETE_SUFFIX}"
        os.rename(copy.source, old)
        self._delete_in_background([old])
        _log.info("copied log %s-%d from %s to %s", topic, partition, copy.source.parent, copy.destination_dir)
        return moved

    def logs(self) -> Iterator[tuple[str, int, Log]]:
        """Every ``(topic, partition, log)``, sorted by topic and partition."""
        for (topic, partition), log in sorted(self._logs.items()):
            yield topic, partition, log

    def update_config(self, topic: str, config: LogConfig) -> None:
        """Apply a topic's new configuration to its logs (and to logs created later)."""
        self._topic_configs[topic] = config
        for (name, _), log in list(self._logs.items()):
            if name == topic:
                log.config = config

    def delete_topic_logs(self, topic: str) -> list[Path]:
        """Remove ``topic``'s logs now (rename) and their files later (background thread).

        Returns the renamed directories. In-flight file slices stay readable.
        """
        renamed = self._remove_logs([key for key in sorted(self._logs) if key[0] == topic])
        self._topic_configs.pop(topic, None)
        return renamed

    def delete_partition_log(self, topic: str, partition: int) -> list[Path]:
        """Remove one partition's log as :meth:`delete_topic_logs` does (a replica
        reassigned to other brokers)."""
        return self._remove_logs([(topic, partition)] if (topic, partition) in self._logs else [])

    def _remove_logs(self, keys: list[tuple[str, int]]) -> list[Path]:
        renamed: list[Path] = []
        for key in keys:
            log = self._logs.pop(key)
            log.close()
            suffix = f".{uuid.uuid4().hex}{_DELETE_SUFFIX}"
            # Kafka's rule: cut the topic part so the name fits in 255 bytes.
            prefix = f"{key[0]}-{key[1]}"[: _MAX_FILE_NAME - len(suffix)]
            target = Path(log.dir).parent / f"{prefix}{suffix}"
            os.rename(log.dir, target)
            renamed.append(target)
        if renamed:
            self._delete_in_background(renamed)
        return renamed

    def _delete_in_background(self, directories: list[Path]) -> None:
        def run() -> None:
            for parent in {d.parent for d in directories}:
                try:
                    fsync_dir(parent)  # make the renames durable before the data goes
                except OSError:
                    _log.exception("fsync of %s failed", parent)
            for directory in directories:
                shutil.rmtree(directory, ignore_errors=True)

        self._deleters = [t for t in self._deleters if t.is_alive()]
        thread = threading.Thread(target=run, name="moldau-log-deleter", daemon=True)
        thread.start()
        self._deleters.append(thread)

    def wait_for_deletions(self, timeout: float | None = None) -> None:
        """Block until background deletions finish (tests, shutdown)."""
        for thread in list(self._deleters):
            thread.join(timeout)

    # -- durability -------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Write both checkpoint files for every log (safe from a worker thread)."""
        logs = list(self._logs.items())
        with self._checkpoint_lock:
            for d in self.dirs:
                mine = [(key, log) for key, log in logs if Path(log.dir).parent == d.path]
                d.recovery_points.write({key: log.recovery_point for key, log in mine})
                d.log_start_offsets.write({key: log.log_start_offset for key, log in mine})

    def flush_dirty(self, now_ms: int | None = None) -> None:
        """Periodic flusher's step (worker thread): honour ``flush.ms`` and rolls.

        Flushes segments rolled since the last flush (Kafka flushes a segment
        when it is rolled) and whole logs whose last flush is older than their
        ``flush.ms``.
        """
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        for log in list(self._logs.values()):
            if log.closed:
                continue
            try:
                if log.recovery_point < log.active_segment.base_offset:
                    log.flush(up_to=log.active_segment.base_offset)
                if log.unflushed_messages > 0 and now - log.last_flush_ms >= log.config.flush_ms:
                    log.flush()
            except FileNotFoundError:
                if not log.closed:
                    raise

    def shutdown(self) -> None:
        """Flush and checkpoint everything, close the logs, then mark the shutdown clean.

        The logs close in parallel (:data:`CLOSE_THREADS`, as Kafka closes its logs with
        a pool per data directory): each close is a few fsyncs (its segments, its
        producer snapshot, the directory), which wait on the disk, not on the CPU."""
        logs = list(self._logs.values())
        if len(logs) > 1:
            with concurrent.futures.ThreadPoolExecutor(CLOSE_THREADS, thread_name_prefix="log-close") as pool:
                for done in [pool.submit(log.close, flush=True) for log in logs]:
                    done.result()
        for log in logs:
            log.close(flush=True)  # (a no-op for those closed above)
        self.checkpoint()
        self.file_cache.clear()
        self.wait_for_deletions()
        for d in self.dirs:
            d.clean_shutdown_file.write()
        self.unlock()

    def unlock(self) -> None:
        """Let go of every log directory's ``.lock`` (what a process's exit does)."""
        for d in self.dirs:
            if d.lock_fd is not None:
                os.close(d.lock_fd)  # releases the flock
                d.lock_fd = None
