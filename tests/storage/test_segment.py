"""LogSegment: appends with sparse indexing, header walking, reads, recovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moldau.records import assign_offsets, iter_batches
from moldau.storage import FileCache, LogSegment
from moldau.storage.segment import filename_prefix, parse_base_offset, walk_batches

from .helpers import make_batch


def test_file_names() -> None:
    assert filename_prefix(0) == "00000000000000000000"
    assert filename_prefix(1234) == "00000000000000001234"
    assert parse_base_offset("00000000000000001234.log") == 1234
    assert parse_base_offset("00000000000000001234.index", ".index") == 1234
    assert parse_base_offset("1234.log") is None
    assert parse_base_offset("0000000000000000123x.log") is None
    assert parse_base_offset("00000000000000001234.log.deleted") is None


def _segment(tmp_path: Path, base: int = 100, interval: int = 150) -> LogSegment:
    return LogSegment.create(
        tmp_path,
        base,
        cache=FileCache(8),
        index_interval_bytes=interval,
        max_index_size=1024,
        now_ms=0,
    )


def _fill(segment: LogSegment, batches: int, per_batch: int = 2) -> list[bytes]:
    """Append ``batches`` batches; returns their bytes as stored."""
    stored = []
    next_offset = segment.next_offset
    assert next_offset is not None
    for i in range(batches):
        data = make_batch(per_batch, timestamp=1000 + 10 * i, tag=i)
        last = assign_offsets(data, next_offset)
        segment.append(data, list(iter_batches(data)), now_ms=5)
        stored.append(bytes(data))
        next_offset = last + 1
    return stored


def test_create_makes_three_files(tmp_path: Path) -> None:
    _segment(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000000000000000100.index",
        "00000000000000000100.log",
        "00000000000000000100.timeindex",
    ]


def test_create_refuses_to_clobber(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    _fill(segment, 1)
    with pytest.raises(FileExistsError):
        _segment(tmp_path)


def test_append_writes_bytes_and_sparse_indexes(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    stored = _fill(segment, 10)
    assert segment.log_path.read_bytes() == b"".join(stored)
    assert segment.size == sum(map(len, stored)) and segment.next_offset == 120
    size = len(stored[0])  # all batches have the same size here
    assert 75 < size <= 150  # so an entry lands every second batch
    entries = segment.offset_index.to_list()
    assert entries == [(100 + 2 * i + 1, i * size) for i in range(2, 10, 2)]
    # The time index follows the max timestamp, recorded at the same points.
    assert segment.time_index.to_list() == [
        (1000 + 10 * i + 1, 100 + 2 * i + 1) for i in range(2, 10, 2)
    ]
    assert segment.max_timestamp_so_far == 1091 and segment.offset_of_max_timestamp == 119


def test_walk_and_translate(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    stored = _fill(segment, 6)
    fd = segment.file().fileno()
    headers = list(walk_batches(fd, 0, segment.size))
    assert [(h.base_offset, h.last_offset) for h in headers] == [
        (100 + 2 * i, 101 + 2 * i) for i in range(6)
    ]
    assert [h.size for h in headers] == [len(b) for b in stored]
    found = segment.translate_offset(105)
    assert found is not None and found.base_offset == 104
    assert segment.translate_offset(50) == headers[0]
    assert segment.translate_offset(112) is None


def test_read_bounds(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    stored = _fill(segment, 6)
    size = len(stored[0])
    # from the batch holding 103, two whole batches fit into 2.5 batches' bytes
    found = segment.read(103, size * 5 // 2, segment.size, True)
    assert found is not None
    first, length = found
    assert (first.base_offset, first.position, length) == (102, size, 2 * size)
    # the first batch is returned whole even if larger than max_bytes ...
    found = segment.read(103, 10, segment.size, True)
    assert found is not None and found[1] == size
    # ... unless min_one_message is off
    found = segment.read(103, 10, segment.size, False)
    assert found is not None and found[1] == 0
    # max_position caps the slice at a batch boundary
    found = segment.read(100, 10_000, 3 * size, True)
    assert found is not None and found[1] == 3 * size
    assert segment.read(200, 100, segment.size, True) is None


def test_recover_rebuilds_the_same_indexes(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    _fill(segment, 12)
    offsets, times = segment.offset_index.to_list(), segment.time_index.to_list()
    segment.on_become_inactive()
    times = segment.time_index.to_list()
    assert segment.recover(now_ms=0) == 0
    assert segment.offset_index.to_list() == offsets
    assert segment.time_index.to_list() == times
    assert segment.next_offset == 124


def test_recover_truncates_a_torn_tail(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    stored = _fill(segment, 4)
    torn = bytearray(make_batch(3))
    assign_offsets(torn, 108)
    with open(segment.log_path, "ab") as f:
        f.write(torn[: len(torn) // 2])
    assert segment.recover(now_ms=0) == len(torn) // 2
    assert segment.log_path.read_bytes() == b"".join(stored)
    assert segment.next_offset == 108


def test_recover_drops_a_batch_with_a_bad_crc(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    stored = _fill(segment, 4)
    with open(segment.log_path, "r+b") as f:
        position = sum(map(len, stored[:3])) + len(stored[3]) // 2 + 5
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x40]))
    assert segment.recover(now_ms=0) == len(stored[3])
    assert segment.log_path.read_bytes() == b"".join(stored[:3])
    assert segment.next_offset == 106


def test_recover_refuses_offsets_that_go_backwards(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    stored = _fill(segment, 2)
    again = bytearray(make_batch(2))
    assign_offsets(again, 101)  # overlaps the first batch
    with open(segment.log_path, "ab") as f:
        f.write(again)
    assert segment.recover(now_ms=0) == len(again)
    assert segment.size == sum(map(len, stored))


def test_truncate_to(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    stored = _fill(segment, 10)
    removed = segment.truncate_to(107, now_ms=0)  # inside the batch 106-107
    assert removed == sum(map(len, stored[3:]))
    assert segment.next_offset == 106
    assert os.path.getsize(segment.log_path) == segment.size
    assert all(offset < 107 for offset, _ in segment.offset_index.to_list())
    assert segment.max_timestamp_so_far == 1021


def test_find_offset_by_timestamp(tmp_path: Path) -> None:
    segment = _segment(tmp_path)
    _fill(segment, 10)  # batch i: offsets 100+2i, 101+2i; timestamps 1000+10i, +1
    assert segment.find_offset_by_timestamp(0, 0) == (100, 1000)
    assert segment.find_offset_by_timestamp(1001, 0) == (101, 1001)
    assert segment.find_offset_by_timestamp(1002, 0) == (102, 1010)
    assert segment.find_offset_by_timestamp(1055, 0) == (112, 1060)
    assert segment.find_offset_by_timestamp(1000, 105) == (105, 1021)
    assert segment.find_offset_by_timestamp(1092, 0) is None
