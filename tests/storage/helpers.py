"""Shared helpers for the storage tests: batches built with moldau.records, log readers."""

from __future__ import annotations

from pathlib import Path

from moldau.records import RecordInput, build_batch, iter_batches
from moldau.storage import FileCache, Log, LogConfig


def make_batch(
    count: int = 1, *, value_size: int = 20, timestamp: int = 1_000, tag: int = 0
) -> bytearray:
    """A producer's batch of ``count`` records (base offset 0, as clients send)."""
    records = [
        RecordInput(
            key=b"k%d-%d" % (tag, i),
            value=bytes([65 + (tag + i) % 26]) * value_size,
            timestamp=timestamp + i,
        )
        for i in range(count)
    ]
    return bytearray(build_batch(records))


def open_log(
    directory: Path,
    config: LogConfig | None = None,
    cache: FileCache | None = None,
    *,
    clean: bool = True,
    recovery_point: int = 0,
    log_start_offset: int = 0,
    now_ms: int = 10_000,
) -> Log:
    """Open (or create) a log with test-friendly defaults."""
    return Log.open(
        directory,
        config or LogConfig(),
        file_cache=cache or FileCache(64),
        recovery_point=recovery_point,
        log_start_offset=log_start_offset,
        clean_shutdown=clean,
        now_ms=now_ms,
    )


def read_all(log: Log, start: int | None = None, max_bytes: int = 1 << 20) -> list[bytes]:
    """Every batch from ``start`` (default log start) to the log end, as bytes."""
    offset = log.log_start_offset if start is None else start
    out: list[bytes] = []
    while offset < log.log_end_offset:
        info = log.read(offset, max_bytes)
        assert info.slice is not None, f"nothing read at {offset} < {log.log_end_offset}"
        data = info.slice.read()
        views = list(iter_batches(data))
        assert views, "a read returned no whole batch"
        for view in views:
            out.append(bytes(view.batch_bytes()))
        offset = views[-1].last_offset + 1
    return out


def offsets_of(batches: list[bytes]) -> list[tuple[int, int]]:
    """``(base_offset, last_offset)`` of each batch."""
    pairs = []
    for data in batches:
        (view,) = iter_batches(data)
        pairs.append((view.base_offset, view.last_offset))
    return pairs
