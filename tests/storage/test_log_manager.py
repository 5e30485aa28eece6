"""LogManager: load, create, checkpoints, clean-shutdown marker, deletion, flushing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moldau.storage import LogConfig, LogManager
from moldau.storage.segment import LogSegment

from .helpers import make_batch, read_all

SMALL = LogConfig(segment_bytes=1000, index_interval_bytes=100)


def _fill(manager: LogManager, topic: str, partitions: int, batches: int) -> None:
    for partition in range(partitions):
        log = manager.create_log(topic, partition, SMALL)
        for i in range(batches):
            log.append_as_leader(make_batch(2, tag=i), leader_epoch=1, now_ms=1_000)


def test_create_get_and_list(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, SMALL)
    manager.load()
    assert manager.get_log("t", 0) is None
    log = manager.create_log("t", 0)
    assert manager.create_log("t", 0) is log
    assert manager.get_log("t", 0) is log
    manager.create_log("a.b_c-d", 12)
    assert [(t, p) for t, p, _ in manager.logs()] == [("a.b_c-d", 12), ("t", 0)]
    assert (tmp_path / "a.b_c-d-12" / "00000000000000000000.log").exists()
    with pytest.raises(ValueError):
        manager.create_log("bad name", 0)


def test_shutdown_then_load_is_clean_and_does_not_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path, SMALL)
    manager.load()
    assert manager.had_clean_shutdown is False
    _fill(manager, "t", 3, 12)
    before = {(t, p): read_all(log) for t, p, log in manager.logs()}
    manager.shutdown()
    assert (tmp_path / ".kafka_cleanshutdown").exists()
    lines = (tmp_path / "recovery-point-offset-checkpoint").read_text().splitlines()
    assert lines == ["0", "3", "t 0 24", "t 1 24", "t 2 24"]
    assert (tmp_path / "log-start-offset-checkpoint").read_text().splitlines() == [
        "0",
        "3",
        "t 0 0",
        "t 1 0",
        "t 2 0",
    ]

    def no_recovery(self: LogSegment, now_ms: int) -> int:
        raise AssertionError("scanned after a clean shutdown")

    monkeypatch.setattr(LogSegment, "recover", no_recovery)
    again = LogManager(tmp_path, SMALL)
    again.load()
    assert again.had_clean_shutdown is True
    assert not (tmp_path / ".kafka_cleanshutdown").exists()  # a kill -9 from now is seen
    assert {(t, p): read_all(log) for t, p, log in again.logs()} == before


def test_load_after_a_crash_recovers_from_the_checkpoints(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, SMALL)
    manager.load()
    _fill(manager, "t", 2, 12)
    log = manager.get_log("t", 0)
    assert log is not None
    log.flush()
    manager.checkpoint()
    # more data, then a crash: no shutdown, a torn tail on partition 0
    log.append_as_leader(make_batch(2), leader_epoch=1, now_ms=0)
    expected = read_all(log)
    with open(log.active_segment.log_path, "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x1a\x00\x00\x01\x00half")
    again = LogManager(tmp_path, SMALL)
    again.load()
    assert again.had_clean_shutdown is False
    recovered = again.get_log("t", 0)
    assert recovered is not None
    assert recovered.recovery_point == 24  # from the checkpoint
    assert read_all(recovered) == expected
    assert recovered.log_end_offset == 26


def test_unreadable_checkpoints_mean_recover_everything(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, SMALL)
    manager.load()
    _fill(manager, "t", 1, 5)
    manager.shutdown()
    (tmp_path / "recovery-point-offset-checkpoint").write_text("garbage\n")
    (tmp_path / ".kafka_cleanshutdown").unlink()
    again = LogManager(tmp_path, SMALL)
    again.load()
    log = again.get_log("t", 0)
    assert log is not None and log.recovery_point == 0 and log.log_end_offset == 10


def test_log_start_offsets_survive_restarts(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, SMALL)
    manager.load()
    _fill(manager, "t", 1, 20)
    log = manager.get_log("t", 0)
    assert log is not None
    log.delete_records_before(13)
    manager.shutdown()
    again = LogManager(tmp_path, SMALL)
    again.load()
    log = again.get_log("t", 0)
    assert log is not None and log.log_start_offset == 13


def test_delete_topic_renames_now_and_deletes_later(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, SMALL)
    manager.load()
    _fill(manager, "gone", 2, 3)
    _fill(manager, "kept", 1, 3)
    log = manager.get_log("gone", 0)
    assert log is not None
    in_flight = log.read(0, 1 << 20).slice
    assert in_flight is not None
    renamed = manager.delete_topic_logs("gone")
    assert len(renamed) == 2
    assert all(p.name.startswith("gone-") and p.name.endswith("-delete") for p in renamed)
    assert manager.get_log("gone", 0) is None and not (tmp_path / "gone-0").exists()
    assert len(in_flight.read()) == in_flight.size  # still readable
    manager.wait_for_deletions()
    assert not any(p.exists() for p in renamed)
    fresh = manager.create_log("gone", 0)  # the name is free at once
    assert fresh.log_end_offset == 0
    manager.checkpoint()
    text = (tmp_path / "recovery-point-offset-checkpoint").read_text()
    assert "gone 1" not in text and "kept 0" in text


def test_load_skips_and_cleans_other_directories(tmp_path: Path) -> None:
    (tmp_path / "t-0.0123456789abcdef-delete").mkdir()
    (tmp_path / "t-0.0123456789abcdef-delete" / "00000000000000000000.log").write_bytes(b"x")
    (tmp_path / "t-0-future").mkdir()
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "meta.properties").write_text("x")
    manager = LogManager(tmp_path, SMALL)
    manager.load()
    manager.wait_for_deletions()
    assert list(manager.logs()) == []
    assert not (tmp_path / "t-0.0123456789abcdef-delete").exists()
    assert (tmp_path / "t-0-future").exists() and (tmp_path / "lost+found").exists()


def test_flush_dirty_honours_flush_ms_and_rolls(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, SMALL)
    manager.load()
    never = manager.create_log("never", 0, SMALL)
    timed = manager.create_log(
        "timed", 0, LogConfig(segment_bytes=1000, index_interval_bytes=100, flush_ms=500)
    )
    for log in (never, timed):
        for i in range(12):  # enough to roll
            log.append_as_leader(make_batch(2, tag=i), leader_epoch=0, now_ms=0)
    manager.flush_dirty(now_ms=timed.last_flush_ms + 400)
    # rolled segments are flushed, the active one only when flush.ms has passed
    assert never.recovery_point == never.active_segment.base_offset > 0
    assert timed.recovery_point == timed.active_segment.base_offset
    manager.flush_dirty(now_ms=timed.last_flush_ms + 499)
    assert timed.recovery_point < timed.log_end_offset
    manager.flush_dirty(now_ms=timed.last_flush_ms + 500)
    assert timed.recovery_point == timed.log_end_offset
    assert never.recovery_point < never.log_end_offset


def test_update_config_applies_to_existing_and_new_logs(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.load()
    log = manager.create_log("t", 0)
    manager.update_config("t", SMALL)
    assert log.config == SMALL
    assert manager.create_log("t", 1).config == SMALL
    assert manager.create_log("u", 0).config == LogConfig()


def test_load_uses_topic_configs(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.load()
    _fill(manager, "t", 1, 2)
    manager.shutdown()
    again = LogManager(tmp_path, LogConfig())
    again.load(topic_configs={"t": SMALL})
    log = again.get_log("t", 0)
    assert log is not None and log.config == SMALL


def test_file_cache_bound_with_2000_partitions(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    manager = LogManager(tmp_path, LogConfig(index_interval_bytes=0), max_open_files=100)
    manager.load()
    batch = make_batch(1)
    for partition in range(2000):
        log = manager.create_log("many", partition)
        for _ in range(2):
            log.append_as_leader(bytearray(batch), leader_epoch=0, now_ms=0)
        assert len(manager.file_cache) <= 100
    for partition in range(0, 2000, 7):
        log = manager.get_log("many", partition)
        assert log is not None
        info = log.read(1, 1000)
        assert info.slice is not None and info.first_batch_offset == 1
        del info
    assert len(manager.file_cache) <= 100
    assert len(os.listdir("/proc/self/fd")) - fds_before <= 100 + 5
    manager.flush_dirty()
    manager.shutdown()
    assert len(manager.file_cache) == 0
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 5


# -- several log directories (log.dirs) ------------------------------------------------


def test_logs_spread_over_log_dirs_and_survive_a_restart(tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    manager = LogManager(dirs, SMALL)
    manager.load()
    _fill(manager, "t", 4, 3)
    assert sorted(manager.dir_of("t", p) for p in range(4)) == [dirs[0], dirs[0], dirs[1], dirs[1]]
    manager.shutdown()
    again = LogManager(dirs, SMALL)
    again.load()
    assert again.had_clean_shutdown is True
    assert [len(read_all(again.get_log("t", p))) for p in range(4)] == [3, 3, 3, 3]


def test_move_by_rename_and_by_copy(tmp_path: Path) -> None:
    """A move renames within one filesystem; a copy (any filesystem) is staged while the
    log takes appends and finished with the log closed; both reopen every batch."""
    dirs = [tmp_path / "a", tmp_path / "b"]
    manager = LogManager(dirs, SMALL)
    manager.load()
    _fill(manager, "t", 1, 5)
    home = manager.dir_of("t", 0)
    other = dirs[1] if home == dirs[0] else dirs[0]
    moved = manager.move_log("t", 0, other)
    assert manager.dir_of("t", 0) == other and len(read_all(moved)) == 5
    moved.append_as_leader(make_batch(2, tag=9), leader_epoch=1, now_ms=1_000)
    copy = manager.begin_copy("t", 0, home)
    assert copy.step() > 0
    for i in range(6):  # appends during the copy, some rolling segments
        moved.append_as_leader(make_batch(2, tag=10 + i), leader_epoch=1, now_ms=1_000)
    copy.step()
    copied = manager.finish_copy("t", 0, copy)
    assert manager.dir_of("t", 0) == home and not (other / "t-0").exists()
    assert len(read_all(copied)) == 12
    assert [p.name for p in home.iterdir() if p.is_dir()] == ["t-0"]  # no staging left behind
    manager.shutdown()
    again = LogManager(dirs, SMALL)
    again.load()
    assert len(read_all(again.get_log("t", 0))) == 12
