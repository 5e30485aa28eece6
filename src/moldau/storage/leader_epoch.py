"""The leader-epoch cache of one partition: at which offset each leader epoch began.

Why: a replica that becomes follower must cut the tail of its log that the new leader
does not have (written by an old leader that was never committed). Comparing offsets
is not enough (both logs may have an offset 10 holding different batches); comparing
leader epochs is: the leader answers OffsetForLeaderEpoch with where the follower's
latest epoch ended in *its* history, and the follower truncates there (KIP-101/279).

File format: ``leader-epoch-checkpoint`` in the partition directory, Kafka's
``LeaderEpochCheckpointFile`` text format, UTF-8, ``\\n`` line ends::

    0              <- format version
    2              <- number of entries
    0 0            <- "epoch start_offset", epochs and offsets increasing
    3 1500

Written whole to ``leader-epoch-checkpoint.tmp`` and renamed over the file, so a crash
leaves the old or the new version, never a torn one. It is not fsynced (like Kafka's
asynchronous flush of this file): after a machine crash a stale cache only makes the
next truncation more conservative, and the log recovery trims entries past the log end.

Thread-safety: used on the event loop thread only.
"""

from __future__ import annotations

import bisect
import logging
import os
from pathlib import Path

from moldau.storage.errors import CorruptCheckpointError

log = logging.getLogger(__name__)

LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


class LeaderEpochCache:
    """Ordered (epoch, start offset) entries, checkpointed on every change."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        #: an assignment not written yet (see :meth:`assign`)
        self.dirty = False
        self.entries: list[tuple[int, int]] = []
        if path is not None and path.exists():
            self.entries = read_checkpoint(path)

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int, *, write: bool = True) -> None:
        """Record that ``epoch`` begins at ``start_offset`` (a new leader at its log
        end, or a follower appending the first batch of an epoch). Entries that this
        one contradicts (a later or equal epoch, or a start at or after it) go.

        ``write=False`` defers the file to :meth:`flush`: a new leader's epoch holds no
        batch until its first append (which flushes first), and an epoch without
        batches changes no answer if a crash forgets it; so becoming leader of
        thousands of partitions writes no file on the event loop."""
        if epoch < 0:
            return
        if self.entries and self.entries[-1][0] == epoch and self.entries[-1][1] <= start_offset:
            return
        kept = [(e, o) for e, o in self.entries if e < epoch and o < start_offset]
        kept.append((epoch, start_offset))
        if kept != self.entries:
            self.entries = kept
            if write:
                self._write()
            else:
                self.dirty = True

    def flush(self) -> None:
        """Write a deferred assignment."""
        if self.dirty:
            self._write()

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Kafka's ``endOffsetFor``: (the largest epoch <= ``epoch`` we know, the offset
        where it ended), the log end for the latest epoch. An epoch older than all we
        know ended where our first one began; one newer than our latest is UNDEFINED."""
        if not self.entries:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if epoch == self.entries[-1][0]:
            return epoch, log_end_offset
        epochs = [e for e, _ in self.entries]
        i = bisect.bisect_right(epochs, epoch)
        if i == len(epochs):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if i == 0:
            return epoch, self.entries[0][1]
        return epochs[i - 1], self.entries[i][1]

    def truncate_from_end(self, end_offset: int) -> None:
        """The log was cut at ``end_offset``: epochs starting at or after it go."""
        kept = [(e, o) for e, o in self.entries if o < end_offset]
        if kept != self.entries:
            self.entries = kept
            self._write()

    def clear(self) -> None:
        if self.entries:
            self.entries = []
            self._write()

    def _write(self) -> None:
        self.dirty = False
        if self.path is None:
            return
        text = f"0\n{len(self.entries)}\n" + "".join(f"{e} {o}\n" for e, o in self.entries)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # a deleted partition directory, a full disk
            log.warning("could not write %s: %s", self.path, exc)


def read_checkpoint(path: Path) -> list[tuple[int, int]]:
    """Parse a ``leader-epoch-checkpoint`` file (see the module docstring)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    try:
        if int(lines[0]) != 0:
            raise CorruptCheckpointError(f"{path}: unknown version {lines[0]!r}")
        count = int(lines[1])
        entries = []
        for line in lines[2:]:
            if not line.strip():
                continue
            epoch, offset = line.split()
            entries.append((int(epoch), int(offset)))
    except (ValueError, IndexError) as exc:
        raise CorruptCheckpointError(f"{path}: malformed ({exc})") from None
    if count != len(entries):
        raise CorruptCheckpointError(f"{path}: {count} entries announced, {len(entries)} found")
    return entries
