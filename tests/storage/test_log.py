"""Log: appends, reads, rolls, timestamps, flush, truncation, reopen and recovery."""

from __future__ import annotations

import logging
import os
import struct
import threading
from pathlib import Path

import pytest

from moldau.records import (
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    TimestampType,
    decode_records,
    iter_batches,
)
from moldau.storage import FileCache, KafkaStorageError, Log, LogConfig, OffsetOutOfRangeError
from moldau.storage.segment import LogSegment

from .helpers import make_batch, offsets_of, open_log, read_all

SMALL = LogConfig(segment_bytes=1000, index_interval_bytes=100)


def _append(log: Log, batches: int, per_batch: int = 3, *, now_ms: int = 10_000) -> list[bytes]:
    stored = []
    for i in range(batches):
        data = make_batch(per_batch, timestamp=1_000 + 100 * i, tag=i)
        log.append_as_leader(data, leader_epoch=7, now_ms=now_ms)
        stored.append(bytes(data))
    return stored


# -- appends and reads -----------------------------------------------------------------


def test_append_assigns_consecutive_offsets(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    infos = [log.append_as_leader(make_batch(n), leader_epoch=3, now_ms=50) for n in (1, 4, 2)]
    assert [(i.first_offset, i.last_offset, i.record_count) for i in infos] == [
        (0, 0, 1),
        (1, 4, 4),
        (5, 6, 2),
    ]
    assert infos[1].log_append_time == -1 and infos[1].max_timestamp == 1_003
    assert log.log_end_offset == 7 and log.log_start_offset == 0
    batches = read_all(log)
    assert offsets_of(batches) == [(0, 0), (1, 4), (5, 6)]
    for data in batches:
        (view,) = iter_batches(data)
        assert view.partition_leader_epoch == 3 and view.crc_is_valid()
    assert [r.offset for r in decode_records(next(iter_batches(batches[1])))] == [1, 2, 3, 4]


def test_append_patches_the_callers_buffer(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    log.append_as_leader(make_batch(2), leader_epoch=0, now_ms=0)
    data = make_batch(1)
    log.append_as_leader(data, leader_epoch=5, now_ms=0)
    assert struct.unpack_from(">q", data)[0] == 2
    assert read_all(log)[-1] == bytes(data)


def test_log_append_time(tmp_path: Path) -> None:
    config = LogConfig(message_timestamp_type="LogAppendTime")
    log = open_log(tmp_path / "t-0", config)
    info = log.append_as_leader(make_batch(2, timestamp=5), leader_epoch=0, now_ms=777_000)
    assert info.log_append_time == 777_000 and info.max_timestamp == 777_000
    (view,) = iter_batches(read_all(log)[0])
    assert view.timestamp_type == TimestampType.LOG_APPEND_TIME
    assert view.max_timestamp == 777_000 and view.crc_is_valid()
    assert log.offset_for_timestamp(777_000) == (0, 777_000)


def test_bad_batches_are_refused_and_leave_the_log_alone(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(max_message_bytes=200))
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0)
    with pytest.raises(RecordTooLargeError):
        log.append_as_leader(make_batch(1, value_size=300), leader_epoch=0, now_ms=0)
    corrupt = make_batch(1)
    corrupt[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        log.append_as_leader(corrupt, leader_epoch=0, now_ms=0)
    with pytest.raises(InvalidRecordError):
        log.append_as_leader(bytearray(), leader_epoch=0, now_ms=0)
    assert log.log_end_offset == 1 and log.size_in_bytes == len(read_all(log)[0])


def test_read_returns_whole_batches_from_the_one_holding_the_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    stored = _append(log, 10)  # offsets 3i..3i+2
    info = log.read(4, 10_000)
    assert info.first_batch_offset == 3
    assert info.log_end_offset == 30 and info.log_start_offset == 0
    assert info.slice is not None
    assert info.slice.read() == b"".join(stored[1:])


def test_read_respects_max_bytes_and_min_one_message(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    stored = _append(log, 10)
    size = len(stored[0])
    info = log.read(0, 3 * size + size // 2)
    assert info.slice is not None and info.slice.size == 3 * size
    assert info.slice.read() == b"".join(stored[:3])
    big = log.read(6, 1)
    assert big.slice is not None and big.slice.read() == stored[2]
    nothing = log.read(6, 1, min_one_message=False)
    assert nothing.slice is None and nothing.first_batch_offset == -1


def test_read_never_passes_max_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    stored = _append(log, 10)
    info = log.read(0, 1 << 20, max_offset=9)  # high watermark at a batch boundary
    assert info.slice is not None and info.slice.read() == b"".join(stored[:3])
    info = log.read(0, 1 << 20, max_offset=10)  # inside a batch: that batch is excluded
    assert info.slice is not None and info.slice.read() == b"".join(stored[:3])
    assert log.read(9, 1 << 20, max_offset=9).slice is None
    assert log.read(10, 1 << 20, max_offset=11).slice is None


def test_read_at_the_end_and_out_of_range(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    assert log.read(0, 100).slice is None
    _append(log, 2)
    end = log.read(6, 100)
    assert end.slice is None and end.log_end_offset == 6
    with pytest.raises(OffsetOutOfRangeError) as caught:
        log.read(7, 100)
    assert caught.value.error_code == 1 and caught.value.log_end_offset == 6
    log.delete_records_before(3)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(2, 100)
    assert log.read(3, 100).first_batch_offset == 3


def test_read_uses_one_segment_only(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", SMALL)
    stored = _append(log, 20)
    assert len(log.segments) > 2
    first_segment = log.segments[0]
    info = log.read(0, 1 << 20)
    assert info.slice is not None and info.slice.size == first_segment.size
    assert read_all(log) == stored


# -- rolling ---------------------------------------------------------------------------


def test_roll_by_size_creates_named_segments_with_indexes(tmp_path: Path) -> None:
    directory = tmp_path / "orders-3"
    log = open_log(directory, SMALL)
    stored = _append(log, 30)
    size = len(stored[0])
    per_segment = 1000 // size
    bases = [s.base_offset for s in log.segments]
    assert bases == [3 * per_segment * i for i in range(len(bases))]
    assert len(bases) == -(-30 // per_segment)
    log.wait_for_snapshot()  # each roll's snapshot is written by a worker thread
    names = sorted(os.listdir(directory))
    for base in bases:
        for suffix in (".log", ".index", ".timeindex"):
            assert f"{base:020d}{suffix}" in names
    # a producer-state snapshot at each roll, named by the new segment's base
    assert [n for n in names if n.endswith(".snapshot")] == [f"{b:020d}.snapshot" for b in bases[1:]]
    assert len(names) == 3 * len(bases) + len(bases) - 1
    for segment in log.segments:
        assert segment.size <= 1000
        assert segment.offset_index.entries > 0
        assert os.path.getsize(segment.index_path) == 8 * segment.offset_index.entries
        assert os.path.getsize(segment.time_index_path) == 12 * segment.time_index.entries
    # Rolled segments carry their largest timestamp as the last time index entry.
    for segment in log.segments[:-1]:
        assert segment.time_index.last_entry[0] == segment.largest_timestamp
    assert read_all(log) == stored


def test_roll_by_age(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_ms=1_000))
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=10_000)
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=10_999)
    assert len(log.segments) == 1
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=11_001)
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_when_the_index_is_full(tmp_path: Path) -> None:
    config = LogConfig(segment_index_bytes=24, index_interval_bytes=0)  # 3 entries
    log = open_log(tmp_path / "t-0", config)
    _append(log, 10, per_batch=1)
    for segment in log.segments[:-1]:
        assert segment.offset_index.is_full or segment.time_index.is_full
    assert len(log.segments) > 2
    assert offsets_of(read_all(log)) == [(i, i) for i in range(10)]


def test_a_batch_larger_than_a_segment_is_refused(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=100))
    with pytest.raises(RecordTooLargeError):
        log.append_as_leader(make_batch(3, value_size=100), leader_epoch=0, now_ms=0)


# -- timestamps --------------------------------------------------------------------------


def test_offset_for_timestamp(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", SMALL)
    _append(log, 20)  # batch i: offsets 3i..3i+2, timestamps 1000+100i+j
    assert len(log.segments) > 2
    assert log.offset_for_timestamp(0) == (0, 1_000)
    assert log.offset_for_timestamp(1_001) == (1, 1_001)
    assert log.offset_for_timestamp(1_003) == (3, 1_100)
    assert log.offset_for_timestamp(2_502) == (47, 2_502)
    assert log.offset_for_timestamp(2_850) == (57, 2_900)
    assert log.offset_for_timestamp(2_902) == (59, 2_902)
    assert log.offset_for_timestamp(2_903) is None
    log.delete_records_before(31)
    assert log.offset_for_timestamp(0) == (31, 2_001)


def test_offset_for_timestamp_with_timestamps_out_of_order(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    for ts in (5_000, 1_000, 7_000, 3_000):
        log.append_as_leader(make_batch(1, timestamp=ts), leader_epoch=0, now_ms=0)
    assert log.offset_for_timestamp(2_000) == (0, 5_000)
    assert log.offset_for_timestamp(6_000) == (2, 7_000)
    assert log.offset_for_timestamp(7_001) is None


# -- durability ------------------------------------------------------------------------


def test_flush_advances_the_recovery_point(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", SMALL)
    _append(log, 12)
    assert log.recovery_point == 0 and log.unflushed_messages == 36
    log.flush(up_to=10)
    assert log.recovery_point == 10
    log.flush()
    assert log.recovery_point == 36 and log.unflushed_messages == 0


def test_flush_messages_flushes_synchronously(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(flush_messages=5))
    _append(log, 1)
    assert log.recovery_point == 0
    _append(log, 1)
    assert log.recovery_point == 6


def test_flush_from_a_worker_thread_while_appending(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", SMALL)
    stop = threading.Event()
    errors: list[BaseException] = []

    def flusher() -> None:
        try:
            while not stop.is_set():
                log.flush()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        stored = _append(log, 60)
    finally:
        stop.set()
        thread.join()
    assert not errors
    log.flush()
    assert log.recovery_point == log.log_end_offset == 180
    assert read_all(log) == stored


# -- truncation and deletion -----------------------------------------------------------


def test_truncate_to(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", SMALL)
    stored = _append(log, 20)
    log.flush()
    assert log.truncate_to(31)  # inside batch 30-32: that batch goes whole
    assert log.log_end_offset == 30 and log.recovery_point == 30
    assert read_all(log) == stored[:10]
    assert all(s.base_offset <= 30 for s in log.segments)
    assert not log.truncate_to(100)
    info = log.append_as_leader(make_batch(1), leader_epoch=1, now_ms=0)
    assert info.first_offset == 30
    assert offsets_of(read_all(log))[-1] == (30, 30)


def test_truncate_below_the_start_restarts_the_log(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", SMALL)
    _append(log, 10)
    log.delete_records_before(12)
    log.truncate_to(5)
    assert (log.log_start_offset, log.log_end_offset) == (5, 5)
    assert [s.base_offset for s in log.segments] == [5]


def test_delete_records_before(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", SMALL)
    stored = _append(log, 20)
    bases = [s.base_offset for s in log.segments]
    assert log.delete_records_before(bases[2] + 1) == bases[2] + 1
    assert [s.base_offset for s in log.segments] == bases[2:]
    assert not (tmp_path / "t-0" / f"{bases[0]:020d}.log").exists()
    assert log.log_start_offset == bases[2] + 1
    assert log.delete_records_before(0) == bases[2] + 1  # never backwards
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(61)
    log.delete_records_before(60)  # everything: the log rolls so nothing old is kept
    assert [s.base_offset for s in log.segments] == [60]
    assert read_all(log) == []
    assert stored


def test_retention_by_size_and_time(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=1000, retention_bytes=2500, retention_ms=-1)
    log = open_log(tmp_path / "t-0", config)
    _append(log, 30)
    count = len(log.segments)
    removed = log.delete_retained_segments(now_ms=0)
    assert removed > 0 and len(log.segments) == count - removed
    assert log.size_in_bytes >= 2500 - 1000
    assert log.log_start_offset == log.segments[0].base_offset
    log.config = LogConfig(segment_bytes=1000, retention_ms=1000)
    _append(log, 30)
    oldest = log.segments[0].largest_timestamp
    assert log.delete_retained_segments(now_ms=oldest + 1_000) == 0
    assert log.delete_retained_segments(now_ms=oldest + 1_001) == 1
    # the active segment is never deleted, and nothing past the upper bound
    bound = log.segments[2].base_offset
    assert log.delete_retained_segments(now_ms=10**9, upper_bound=bound) == 2
    assert log.log_start_offset == bound
    before = len(log.segments)
    assert log.delete_retained_segments(now_ms=10**9) == before - 1
    assert len(log.segments) == 1


def test_append_as_follower_keeps_offsets(tmp_path: Path) -> None:
    leader = open_log(tmp_path / "leader-0", SMALL)
    _append(leader, 10)
    follower = open_log(tmp_path / "follower-0", SMALL)
    for data in read_all(leader):
        follower.append_as_follower(data, now_ms=0)
    assert read_all(follower) == read_all(leader)
    with pytest.raises(InvalidRecordError):
        follower.append_as_follower(read_all(leader)[0], now_ms=0)  # below the log end
    gap = bytearray(read_all(leader)[0])
    gap[0:8] = struct.pack(">q", 1_000)  # a compacted leader's gap
    info = follower.append_as_follower(gap, now_ms=0)
    assert (info.first_offset, info.last_offset) == (1_000, 1_002)
    assert follower.log_end_offset == 1_003
    assert follower.read(100, 10_000).first_batch_offset == 1_000


def test_close_and_delete(tmp_path: Path) -> None:
    cache = FileCache(16)
    log = open_log(tmp_path / "t-0", SMALL, cache)
    _append(log, 5)
    log.close()
    assert log.closed and len(cache) == 0
    with pytest.raises(ValueError):
        log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0)
    log.delete()
    assert not (tmp_path / "t-0").exists()


def test_open_slices_survive_segment_deletion(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", SMALL)
    stored = _append(log, 20)
    info = log.read(0, 1 << 20)
    assert info.slice is not None
    log.delete_records_before(40)
    assert info.slice.read() == b"".join(stored[: info.slice.size // len(stored[0])])


# -- reopening -------------------------------------------------------------------------


def test_reopen_after_clean_shutdown_does_not_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory, SMALL)
    stored = _append(log, 25)
    log.close(flush=True)  # also writes the active segment's final time index entry
    indexes = [(s.offset_index.to_list(), s.time_index.to_list()) for s in log.segments]

    def no_recovery(self: LogSegment, now_ms: int) -> int:
        raise AssertionError(f"{self} was scanned")

    monkeypatch.setattr(LogSegment, "recover", no_recovery)
    again = open_log(directory, SMALL, clean=True, recovery_point=0)
    assert again.log_end_offset == 75 and again.recovery_point == 75
    assert [(s.offset_index.to_list(), s.time_index.to_list()) for s in again.segments] == (indexes)
    assert read_all(again) == stored
    assert again.offset_for_timestamp(3_401) == (73, 3_401)
    info = again.append_as_leader(make_batch(1), leader_epoch=0, now_ms=10_000)
    assert info.first_offset == 75


def test_missing_or_corrupt_indexes_are_rebuilt_after_clean_shutdown(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory, SMALL)
    stored = _append(log, 25)
    log.close(flush=True)  # also writes the active segment's final time index entry
    indexes = [(s.offset_index.to_list(), s.time_index.to_list()) for s in log.segments]
    segments = sorted(directory.glob("*.log"))
    segments[0].with_suffix(".index").unlink()
    segments[1].with_suffix(".timeindex").write_bytes(b"\x07" * 17)
    segments[-1].with_suffix(".index").write_bytes(b"\xff" * 16)
    again = open_log(directory, SMALL, clean=True)
    assert [(s.offset_index.to_list(), s.time_index.to_list()) for s in again.segments] == (indexes)
    assert read_all(again) == stored


def _tail_garbage(log_path: Path, data: bytes) -> None:
    with open(log_path, "ab") as f:
        f.write(data)


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00" * 4096,
        b"\x01\x02\x03",
        struct.pack(">qi", 60, 0x7FFFFFF0) + b"x" * 200,
        bytes(range(256)) * 4,
    ],
    ids=["zeros", "short", "huge-length", "garbage"],
)
def test_unclean_reopen_truncates_a_garbage_tail(tmp_path: Path, tail: bytes) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory, SMALL)
    stored = _append(log, 20)
    active = log.active_segment
    active_size = active.size
    _tail_garbage(active.log_path, tail)  # the broker died without shutting down
    again = open_log(directory, SMALL, clean=False, recovery_point=0)
    assert again.log_end_offset == 60
    assert again.active_segment.size == active_size
    assert os.path.getsize(active.log_path) == active_size
    assert read_all(again) == stored
    assert again.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0).first_offset == 60


def test_unclean_reopen_truncates_half_a_batch_and_rebuilds_indexes(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory, SMALL)
    stored = _append(log, 20)
    indexes = [(s.offset_index.to_list(), s.time_index.to_list()) for s in log.segments]
    active = log.active_segment
    active.on_become_inactive()  # what recovery appends too
    indexes[-1] = (active.offset_index.to_list(), active.time_index.to_list())
    half = make_batch(3)
    half[0:8] = struct.pack(">q", 60)
    _tail_garbage(active.log_path, bytes(half[: len(half) // 2]))
    for segment in log.segments:
        segment.index_path.write_bytes(b"")  # indexes lost too
        segment.time_index_path.write_bytes(b"")
    again = open_log(directory, SMALL, clean=False, recovery_point=0)
    assert read_all(again) == stored
    assert [(s.offset_index.to_list(), s.time_index.to_list()) for s in again.segments] == (indexes)


def test_unclean_reopen_drops_a_batch_with_a_flipped_byte(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory, SMALL)
    stored = _append(log, 20)
    active = log.active_segment
    last_size = len(stored[-1])
    with open(active.log_path, "r+b") as f:
        position = active.size - last_size // 2
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ 0x01]))
    again = open_log(directory, SMALL, clean=False, recovery_point=0)
    assert again.log_end_offset == 57
    assert read_all(again) == stored[:-1]


def test_a_torn_segment_drops_the_later_ones(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory, SMALL)
    _append(log, 20)
    second = log.segments[1]
    with open(second.log_path, "r+b") as f:
        f.truncate(second.size - 10)
    later = [s.log_path for s in log.segments[2:]]
    again = open_log(directory, SMALL, clean=False, recovery_point=0)
    assert len(again.segments) == 2
    assert all(not path.exists() for path in later)
    assert again.log_end_offset == again.segments[1].base_offset + 3 * (
        (second.size - 10) // len(make_batch(3))
    )


def test_unclean_reopen_scans_only_from_the_recovery_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory, SMALL)
    stored = _append(log, 30)
    bases = [s.base_offset for s in log.segments]
    log.flush()
    scanned: list[int] = []
    original = LogSegment.recover

    def counting(self: LogSegment, now_ms: int) -> int:
        scanned.append(self.base_offset)
        return original(self, now_ms)

    monkeypatch.setattr(LogSegment, "recover", counting)
    recovery_point = bases[-2] + 1  # inside the second to last segment
    again = open_log(directory, SMALL, clean=False, recovery_point=recovery_point)
    assert scanned == bases[-2:]
    assert again.recovery_point == recovery_point
    assert read_all(again) == stored


def test_reopen_with_a_checkpointed_start_offset(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory, SMALL)
    _append(log, 20)
    log.delete_records_before(25)
    log.close(flush=True)
    again = open_log(directory, SMALL, log_start_offset=25)
    assert again.log_start_offset == 25
    assert again.read(25, 100).first_batch_offset == 24
    with pytest.raises(OffsetOutOfRangeError):
        again.read(24, 100)


def test_leftover_files_are_removed_on_open(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory)
    _append(log, 2)
    log.close(flush=True)
    for name in (
        "00000000000000000000.log.deleted",
        "00000000000000000000.index.tmp",
        "00000000000000000099.index",
        "00000000000000000099.timeindex",
        "00000000000000000099.txnindex",
    ):
        (directory / name).write_bytes(b"x")
    again = open_log(directory)
    assert sorted(os.listdir(directory)) == [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
        "00000000000000000006.snapshot",  # the producer state at the clean shutdown
    ]
    assert again.log_end_offset == 6


def test_empty_directory_starts_at_the_log_start_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", log_start_offset=42)
    assert (log.log_start_offset, log.log_end_offset) == (42, 42)
    assert log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0).first_offset == 42
    assert (tmp_path / "t-0" / "00000000000000000042.log").exists()


def test_a_failed_write_appends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(tmp_path / "t-0")
    stored = _append(log, 2)
    real_pwrite = os.pwrite

    def short_then_full_disk(fd: int, data: object, offset: int) -> int:
        if offset == log.active_segment.size:
            return real_pwrite(fd, memoryview(data)[:10], offset)  # type: ignore[arg-type]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", short_then_full_disk)
    with pytest.raises(KafkaStorageError) as caught:
        log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0)
    assert caught.value.error_code == 56
    monkeypatch.undo()
    assert log.log_end_offset == 6
    assert os.path.getsize(log.active_segment.log_path) == log.active_segment.size
    assert read_all(log) == stored
    assert log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0).first_offset == 6


def test_failed_appends_are_logged_at_a_bounded_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk answers every produce with KAFKA_STORAGE_ERROR: the log says why, a
    bounded number of times, and counts the rest."""
    import moldau.storage.log as log_module

    log = open_log(tmp_path / "t-0")
    clock = [0.0]
    throttle = log_module._storage_error_log
    monkeypatch.setattr(throttle, "_clock", lambda: clock[0])
    monkeypatch.setattr(throttle, "_window_start", -float("inf"))

    def full_disk(fd: int, data: object, offset: int) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full_disk)
    with caplog.at_level(logging.ERROR, logger="moldau.storage.log"):
        for _ in range(1000):
            with pytest.raises(KafkaStorageError):
                log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0)
        clock[0] += throttle.interval
        with pytest.raises(KafkaStorageError):
            log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == throttle.burst + 2, lines[-3:]
    assert all("No space left on device" in line for line in lines[: throttle.burst])
    assert lines[-2].startswith(f"{1000 - throttle.burst} more failed appends")
