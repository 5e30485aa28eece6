"""TimeIndex: 12-byte big-endian entries, monotonic timestamps, reserved final slot."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from moldau.storage import FileCache
from moldau.storage.errors import CorruptIndexError
from moldau.storage.time_index import TimeIndex

BASE = 500


@pytest.fixture
def index(tmp_path: Path) -> TimeIndex:
    return TimeIndex.create(tmp_path / "x.timeindex", BASE, 60, FileCache(4))


def test_file_holds_timestamp_and_relative_offset(index: TimeIndex) -> None:
    index.maybe_append(1_700_000_000_000, 510)
    assert index.path.read_bytes() == struct.pack(">qi", 1_700_000_000_000, 10)
    assert index.to_list() == [(1_700_000_000_000, 510)]


def test_only_growing_timestamps_are_appended(index: TimeIndex) -> None:
    index.maybe_append(100, 501)
    index.maybe_append(100, 502)  # same timestamp: ignored
    index.maybe_append(90, 503)  # smaller: ignored
    index.maybe_append(150, 504)
    assert index.to_list() == [(100, 501), (150, 504)]
    with pytest.raises(ValueError):
        index.maybe_append(200, 503)  # offsets may not go back
    index.maybe_append(-1, 505)  # no timestamp: ignored
    assert index.last_entry == (150, 504)


def test_lookup(index: TimeIndex) -> None:
    assert index.lookup(5) == (-1, BASE)
    index.maybe_append(100, 501)
    index.maybe_append(200, 510)
    assert index.lookup(99) == (-1, BASE)
    assert index.lookup(100) == (100, 501)
    assert index.lookup(199) == (100, 501)
    assert index.lookup(10_000) == (200, 510)


def test_last_slot_is_reserved_for_the_final_entry(index: TimeIndex) -> None:
    assert index.max_entries == 5
    for i in range(4):
        index.maybe_append(100 + i, 501 + i)
    assert index.is_full
    with pytest.raises(ValueError):
        index.maybe_append(500, 600)
    index.maybe_append(500, 600, skip_full_check=True)
    assert index.entries == 5
    index.maybe_append(600, 601, skip_full_check=True)  # no room at all: ignored
    assert index.entries == 5 and index.path.stat().st_size == 60


def test_truncate_and_reload(index: TimeIndex) -> None:
    index.replace([(100, 501), (200, 510), (300, 520)])
    index.truncate_to(510)
    assert index.to_list() == [(100, 501)]
    loaded = TimeIndex.load(index.path, BASE, 60, FileCache(2))
    assert loaded.to_list() == [(100, 501)]
    loaded.sanity_check(next_offset=502)
    with pytest.raises(CorruptIndexError):
        loaded.sanity_check(next_offset=501)


def test_corrupt_files_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "bad.timeindex"
    path.write_bytes(b"\x01" * 17)
    with pytest.raises(CorruptIndexError):
        TimeIndex.load(path, 0, 120, FileCache(2))
    path.write_bytes(struct.pack(">qiqi", 200, 1, 100, 2))
    with pytest.raises(CorruptIndexError):
        TimeIndex.load(path, 0, 120, FileCache(2)).sanity_check(next_offset=10)
