"""FileCache: bounded LRU of shared handles; evicted handles live while referenced."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from moldau.storage import FileCache, FileSlice


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_bound_and_lru_order(tmp_path: Path) -> None:
    cache = FileCache(3)
    paths = [tmp_path / f"f{i}" for i in range(5)]
    for path in paths[:3]:
        cache.get(path, create=True)
    cache.get(paths[0])  # most recently used now
    cache.get(paths[3], create=True)  # evicts f1, the least recently used
    assert len(cache) == 3
    assert paths[0] in cache and paths[1] not in cache and paths[3] in cache
    assert cache.opens == 4


def test_same_handle_while_cached(tmp_path: Path) -> None:
    cache = FileCache(2)
    first = cache.get(tmp_path / "a", create=True)
    assert cache.get(tmp_path / "a") is first
    assert first.mode == "rb+"


def test_missing_file_is_not_created_without_create(tmp_path: Path) -> None:
    cache = FileCache(2)
    with pytest.raises(FileNotFoundError):
        cache.get(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_evicted_handle_stays_open_while_a_slice_references_it(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"hello world")
    cache = FileCache(1)
    piece = FileSlice(cache.get(path), 6, 5)
    cache.get(tmp_path / "other", create=True)  # evicts "data"
    assert path not in cache
    assert not piece.file.closed
    assert piece.read() == b"world"
    before = _open_fds()
    del piece  # the last reference: CPython closes the file now
    assert _open_fds() == before - 1


def test_handles_reopen_on_demand(tmp_path: Path) -> None:
    cache = FileCache(1)
    path = tmp_path / "a"
    f = cache.get(path, create=True)
    os.pwrite(f.fileno(), b"xyz", 0)
    del f
    cache.get(tmp_path / "b", create=True)
    again = cache.get(path)
    assert os.pread(again.fileno(), 3, 0) == b"xyz"
    assert cache.opens == 3


def test_evict_under_and_clear(tmp_path: Path) -> None:
    cache = FileCache(10)
    (tmp_path / "d").mkdir()
    cache.get(tmp_path / "d" / "x", create=True)
    cache.get(tmp_path / "dd", create=True)
    cache.evict_under(tmp_path / "d")
    assert len(cache) == 1 and tmp_path / "dd" in cache
    cache.clear()
    assert len(cache) == 0


def test_concurrent_use_respects_the_bound(tmp_path: Path) -> None:
    cache = FileCache(8)
    paths = [tmp_path / f"f{i}" for i in range(40)]
    for path in paths:
        path.write_bytes(b"x")
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(400):
                f = cache.get(paths[(i * 7 + offset) % len(paths)])
                assert os.pread(f.fileno(), 1, 0) == b"x"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(cache) <= 8


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FileCache(0)
