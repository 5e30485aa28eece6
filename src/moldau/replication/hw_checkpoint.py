"""The high-watermark checkpoint of a data directory (Kafka's ``replication-offset-checkpoint``).

Why: the high watermark is what the ISR has; it lives in memory and moves with every
fetch. Without a copy on disk a restarted broker would start every replicated
partition at its log start: as leader it would show consumers nothing until its
followers fetched again, and as a follower whose log has no leader-epoch history it
would have nothing to truncate to but the log start (Kafka's followers without epochs
truncate to their high watermark). With the checkpoint, a restarted replica starts from
the high watermark it last wrote, never above its log end (after a crash the log may be
shorter than when the checkpoint was written).

File format: ``replication-offset-checkpoint`` at the top of the data directory, the
same text format as ``recovery-point-offset-checkpoint`` (version ``0``, a count, then
``topic partition offset`` lines; :class:`moldau.storage.checkpoint.OffsetCheckpointFile`),
written whole to a temporary file, fsynced and renamed, so a crash leaves the old or
the new version. Kafka writes it every ``replica.high.watermark.checkpoint.interval.ms``
(5000) and at shutdown; so does :class:`HighWatermarkCheckpoint`. A stale value is
safe: it is lower than the truth, and a high watermark only moves up from there.

Thread-safety: :meth:`HighWatermarkCheckpoint.write` may run on a worker thread (it
fsyncs); the snapshot it writes is taken on the event loop by the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from moldau.storage.checkpoint import OffsetCheckpointFile
from moldau.storage.errors import CorruptCheckpointError

log = logging.getLogger(__name__)

REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"


class HighWatermarkCheckpoint:
    """Reads once at start, then writes snapshots (skipping unchanged ones)."""

    def __init__(self, data_dir: Path) -> None:
        self.file = OffsetCheckpointFile(Path(data_dir) / REPLICATION_OFFSET_CHECKPOINT)
        self._written: dict[tuple[str, int], int] | None = None

    def read(self) -> dict[tuple[str, int], int]:
        """The checkpointed high watermarks; an unreadable file counts as none (as
        Kafka: every partition then starts from its log start)."""
        try:
            return self.file.read()
        except (CorruptCheckpointError, OSError, UnicodeDecodeError) as exc:
            log.warning("ignoring unreadable %s: %s", self.file.path, exc)
            return {}

    def write(self, high_watermarks: Mapping[tuple[str, int], int]) -> bool:
        """Write ``high_watermarks`` unless they are what was written last; True if written."""
        snapshot = dict(high_watermarks)
        if snapshot == self._written:
            return False
        self.file.write(snapshot)
        self._written = snapshot
        return True

    async def run(self, snapshot: Callable[[], Mapping[tuple[str, int], int]], interval_s: float) -> None:
        """Write ``snapshot()`` (taken on the loop) every ``interval_s``, off the loop."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.write, snapshot())
            except Exception:
                log.exception("writing %s failed", self.file.path)
