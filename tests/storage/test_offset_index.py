"""OffsetIndex: 8-byte big-endian entries, lookups, truncation, capacity, loading."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from moldau.storage import FileCache
from moldau.storage.errors import CorruptIndexError
from moldau.storage.offset_index import OffsetIndex

BASE = 1000


@pytest.fixture
def index(tmp_path: Path) -> OffsetIndex:
    return OffsetIndex.create(tmp_path / "x.index", BASE, 80, FileCache(4))


def test_file_holds_relative_offset_and_position_big_endian(index: OffsetIndex) -> None:
    index.append(1004, 100)
    index.append(1010, 4200)
    assert index.path.read_bytes() == struct.pack(">iiii", 4, 100, 10, 4200)
    assert index.to_list() == [(1004, 100), (1010, 4200)]


def test_lookup_finds_the_largest_entry_at_or_below(index: OffsetIndex) -> None:
    for offset, position in ((1004, 100), (1010, 200), (1020, 300)):
        index.append(offset, position)
    assert index.lookup(999) == (BASE, 0)
    assert index.lookup(1003) == (BASE, 0)
    assert index.lookup(1004) == (1004, 100)
    assert index.lookup(1015) == (1010, 200)
    assert index.lookup(5000) == (1020, 300)
    assert index.floor_position(250) == 200
    assert index.floor_position(50) == 0
    assert index.last_offset == 1020 and index.last_position == 300


def test_empty_index_lookups(index: OffsetIndex) -> None:
    assert index.lookup(1234) == (BASE, 0)
    assert index.last_offset == BASE and index.entries == 0


def test_entries_must_increase(index: OffsetIndex) -> None:
    index.append(1004, 100)
    with pytest.raises(ValueError):
        index.append(1004, 200)
    with pytest.raises(ValueError):
        index.append(1005, 100)
    with pytest.raises(ValueError):
        index.append(BASE + 2**31, 300)  # does not fit a relative int32


def test_capacity_from_index_bytes(index: OffsetIndex) -> None:
    assert index.max_entries == 10
    for i in range(10):
        index.append(BASE + i + 1, (i + 1) * 10)
    assert index.is_full
    with pytest.raises(ValueError):
        index.append(BASE + 100, 1000)


def test_truncate_to_removes_entries_at_or_above(index: OffsetIndex) -> None:
    for offset, position in ((1004, 100), (1010, 200), (1020, 300)):
        index.append(offset, position)
    index.truncate_to(1010)
    assert index.to_list() == [(1004, 100)]
    assert index.path.stat().st_size == 8
    index.truncate_to(1005)
    assert index.entries == 1
    index.append(1006, 150)
    assert index.to_list() == [(1004, 100), (1006, 150)]
    index.reset()
    assert index.entries == 0 and index.path.stat().st_size == 0


def test_load_round_trip_and_replace(index: OffsetIndex, tmp_path: Path) -> None:
    index.replace([(1001, 10), (1002, 20), (1500, 9000)])
    loaded = OffsetIndex.load(index.path, BASE, 80, FileCache(2))
    assert loaded.to_list() == [(1001, 10), (1002, 20), (1500, 9000)]
    loaded.sanity_check(log_size=10_000)


def test_corrupt_files_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "bad.index"
    path.write_bytes(b"\x00" * 13)
    with pytest.raises(CorruptIndexError):
        OffsetIndex.load(path, 0, 80, FileCache(2))
    # Kafka's preallocated, zero-filled index left by a crash: not increasing.
    path.write_bytes(struct.pack(">ii", 5, 100) + b"\x00" * 16)
    loaded = OffsetIndex.load(path, 0, 80, FileCache(2))
    with pytest.raises(CorruptIndexError):
        loaded.sanity_check(log_size=1000)
    # An entry pointing past the end of the log.
    path.write_bytes(struct.pack(">ii", 5, 100))
    with pytest.raises(CorruptIndexError):
        OffsetIndex.load(path, 0, 80, FileCache(2)).sanity_check(log_size=100)
