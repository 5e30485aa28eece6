"""The log's transaction state: aborted index (.txnindex), producer snapshots, LSO, recovery."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from moldau.records import BatchView, RecordInput, build_batch
from moldau.storage import Log, LogConfig
from moldau.storage.txn_index import AbortedTxn, read_txn_index
from moldau.storage.txn_state import (
    ProducerTxnState,
    encode_marker_record,
    list_snapshots,
    read_snapshot,
    snapshot_path,
)

from .helpers import open_log

SMALL = LogConfig(segment_bytes=1000)


def txn_batch(pid: int, epoch: int, seq: int, count: int = 2, *, transactional: bool = True) -> bytearray:
    records = [RecordInput(key=b"k%d" % i, value=b"v" * 30, timestamp=1000 + i) for i in range(count)]
    return bytearray(
        build_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=transactional)
    )


def marker(pid: int, epoch: int, commit: bool, coordinator_epoch: int = 0) -> bytearray:
    key, value = encode_marker_record(commit, coordinator_epoch)
    return bytearray(
        build_batch(
            [RecordInput(key=key, value=value, timestamp=2000)],
            producer_id=pid,
            producer_epoch=epoch,
            is_transactional=True,
            is_control=True,
        )
    )


def append(log: Log, batch: bytearray) -> int:
    """Append as leader: a client's batch, or the broker's own marker."""
    control = BatchView(batch, 0).is_control
    return log.append_as_leader(batch, leader_epoch=0, now_ms=10_000, from_client=not control).first_offset


def test_ongoing_transactions_hold_the_first_unstable_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, bytearray(build_batch([RecordInput(b"a", b"b", (), 1)])))  # no producer
    first = append(log, txn_batch(7, 0, 0))  # offsets 1-2
    append(log, txn_batch(8, 0, 0))  # 3-4
    assert log.first_unstable_offset() == first == 1
    append(log, marker(7, 0, commit=True))  # 5
    # the commit is not replicated yet (no high watermark given): still unstable
    assert log.first_unstable_offset() == 1
    log.on_high_watermark(6)
    assert log.first_unstable_offset() == 3  # producer 8 is still open
    append(log, marker(8, 0, commit=False))  # 6
    log.on_high_watermark(7)
    assert log.first_unstable_offset() is None
    assert log.txn_state.producers[7].txn_first_offset == -1
    assert log.aborted.entries == [AbortedTxn(8, 3, 6, 7)]


def test_aborted_index_file_is_kafkas_format(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory)
    append(log, txn_batch(5, 1, 0))  # 0-1
    append(log, txn_batch(6, 1, 0))  # 2-3
    append(log, marker(5, 1, commit=False, coordinator_epoch=3))  # 4
    data = (directory / "00000000000000000000.txnindex").read_bytes()
    # version, producer id, first offset, last offset, last stable offset (producer 6 open at 2)
    assert data == struct.pack(">hqqqq", 0, 5, 0, 4, 2)
    assert log.txn_state.producers[5].coordinator_epoch == 3


def test_collect_aborted_is_kafkas_search(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, txn_batch(1, 0, 0))  # 0-1
    append(log, marker(1, 0, commit=False))  # 2
    append(log, txn_batch(2, 0, 0))  # 3-4
    append(log, marker(2, 0, commit=True))  # 5 (commits are not indexed)
    append(log, txn_batch(3, 0, 0))  # 6-7
    append(log, marker(3, 0, commit=False))  # 8
    assert [a.producer_id for a in log.collect_aborted(0, 9)] == [1, 3]
    assert [a.producer_id for a in log.collect_aborted(3, 9)] == [3]
    assert [a.producer_id for a in log.collect_aborted(0, 5)] == [1]
    assert log.collect_aborted(9, 9) == []


def test_a_marker_without_data_here_completes_nothing(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, marker(9, 2, commit=False))
    assert log.aborted.entries == []
    assert log.first_unstable_offset() is None
    assert log.txn_state.producers[9].epoch == 2


def test_clean_restart_loads_the_snapshot_and_the_index(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory)
    append(log, txn_batch(1, 0, 0))  # 0-1
    append(log, marker(1, 0, commit=False))  # 2
    append(log, txn_batch(2, 4, 0))  # 3-4, left open
    log.close(flush=True)
    assert list_snapshots(directory) == [5]
    entries = read_snapshot(snapshot_path(directory, 5))
    assert entries[2].txn_first_offset == 3 and entries[2].epoch == 4
    again = open_log(directory)
    assert again.first_unstable_offset() == 3
    assert again.aborted.entries == [AbortedTxn(1, 0, 2, 3)]


def test_unclean_restart_rebuilds_the_index_and_the_open_transactions(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory, SMALL)
    expected = []
    for i in range(12):  # several segments, each roll writing a snapshot
        pid = 100 + i
        first = append(log, txn_batch(pid, 0, 0))
        last = append(log, marker(pid, 0, commit=i % 2 == 0))
        if i % 2:
            expected.append((pid, first, last))
    open_first = append(log, txn_batch(500, 0, 0))
    assert len(log.segments) > 2
    log.flush()
    # a crash: no clean-shutdown snapshot; lose the last snapshots and the active
    # segment's aborted index, as a crash before their write would
    for name in os.listdir(directory):
        if name.endswith(".txnindex") and name.startswith(f"{log.segments[-1].base_offset:020d}"):
            (directory / name).unlink()
    for offset in list_snapshots(directory)[-2:]:
        snapshot_path(directory, offset).unlink()
    log.close()
    again = open_log(directory, SMALL, clean=False, recovery_point=log.segments[-2].base_offset)
    assert [(a.producer_id, a.first_offset, a.last_offset) for a in again.aborted.entries] == expected
    # the replayed markers are unreplicated until the partition sets its high watermark
    again.on_high_watermark(again.log_end_offset)
    assert again.first_unstable_offset() == open_first
    # the rebuilt files hold the same entries
    on_disk = []
    for segment in again.segments:
        on_disk += read_txn_index(directory / f"{segment.base_offset:020d}.txnindex")
    assert [(a.producer_id, a.first_offset, a.last_offset) for a in on_disk] == expected


def test_a_corrupt_snapshot_is_ignored_and_the_log_replayed(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = open_log(directory)
    append(log, txn_batch(1, 0, 0))
    log.close(flush=True)
    path = snapshot_path(directory, 2)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    again = open_log(directory)
    assert again.first_unstable_offset() == 0
    assert again.txn_state.producers[1].last_offset == 1


def test_truncation_forgets_markers_and_reopens_transactions(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, txn_batch(1, 0, 0))  # 0-1
    append(log, marker(1, 0, commit=False))  # 2
    assert log.first_unstable_offset() is not None  # unreplicated
    log.truncate_to(2)
    assert log.aborted.entries == []
    assert log.first_unstable_offset() == 0  # the transaction is open again
    log.truncate_to(0)
    assert log.first_unstable_offset() is None
    assert log.txn_state.producers == {}


def test_follower_appends_keep_the_same_state(tmp_path: Path) -> None:
    leader = open_log(tmp_path / "a-0")
    append(leader, txn_batch(1, 0, 0))
    append(leader, marker(1, 0, commit=False))
    follower = open_log(tmp_path / "b-0")
    data = leader.read(0, 1 << 20).slice.read()
    follower.append_as_follower(data, now_ms=10_000)
    assert follower.aborted.entries == leader.aborted.entries


def test_retention_drops_the_entries_of_deleted_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", SMALL)
    for i in range(10):
        append(log, txn_batch(10 + i, 0, 0))
        append(log, marker(10 + i, 0, commit=False))
    before = len(log.aborted)
    start = log.segments[2].base_offset
    log.delete_records_before(start)
    assert 0 < len(log.aborted) < before
    assert all(a.last_offset >= start for a in log.aborted.entries)


def test_snapshot_bytes_roundtrip(tmp_path: Path) -> None:
    state = ProducerTxnState()
    state.on_data_batch(42, 3, 10, 100, 104, 5555, True)
    path = tmp_path / "00000000000000000105.snapshot"
    path.write_bytes(state.snapshot_bytes())
    info = read_snapshot(path)[42]
    assert (info.epoch, info.last_sequence, info.last_offset, info.offset_delta, info.txn_first_offset) == (
        3, 14, 104, 4, 100,
    )
    assert info.last_timestamp == 5555 and info.coordinator_epoch == -1


# -- durable snapshots -------------------------------------------------------------------

_KILLED_WRITER = """
import os, signal, sys, time
from pathlib import Path
sys.path[:0] = [{tests!r}]
from storage.helpers import open_log
from storage.test_txn_log import append, txn_batch
log = open_log(Path({directory!r}))
for pid in range({producers}):
    append(log, txn_batch(pid, 0, 0, count=1))
log.roll()  # the snapshot at the new base, written by the snapshot writer thread
path = Path({directory!r}) / ("%020d.snapshot" % log.log_end_offset)
while not path.exists():  # renamed into place: kill at once
    time.sleep(0.0005)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_snapshot_is_complete_after_a_kill_9_right_after_it_was_written(tmp_path: Path) -> None:
    """A process killed the moment its roll's snapshot appears leaves a complete,
    readable snapshot (written to a temporary file, fsynced, then renamed)."""
    import signal
    import subprocess
    import sys

    directory = tmp_path / "t-0"
    producers = 3000  # a snapshot of about 140 KB
    script = _KILLED_WRITER.format(tests=str(Path(__file__).parent.parent), directory=str(directory),
                                   producers=producers)
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    assert list_snapshots(directory) == [producers]
    entries = read_snapshot(snapshot_path(directory, producers))
    assert sorted(entries) == list(range(producers))
    assert all(e.txn_first_offset == pid for pid, e in entries.items())
    again = open_log(directory, clean=False)  # no .tmp left, the open transactions back
    assert not [n for n in os.listdir(directory) if n.endswith(".tmp")]
    assert again.first_unstable_offset() == 0 and len(again.txn_state.ongoing) == producers


def test_a_roll_snapshot_is_fsynced_by_the_writer_thread(tmp_path: Path, monkeypatch) -> None:
    """The roll returns without touching the disk for its snapshot: the snapshot file
    and the directory are fsynced by the writer thread, not the log's owner."""
    import threading

    synced: list[tuple[str, int]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), threading.get_ident()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    directory = tmp_path / "t-0"
    log = open_log(directory)
    append(log, txn_batch(5, 0, 0))
    log.roll()
    log.wait_for_snapshot()
    owner = threading.get_ident()
    mine = [(path, thread) for path, thread in synced if str(directory) in path]
    assert any(p.endswith(".snapshot.tmp") for p, _ in mine), mine
    assert any(p == str(directory) for p, _ in mine), mine
    assert all(thread != owner for _, thread in mine)
    assert read_snapshot(snapshot_path(directory, 2))[5].txn_first_offset == 0


def test_a_truncation_drops_a_snapshot_still_queued(tmp_path: Path) -> None:
    """A roll's snapshot still waiting for the writer when the log is truncated below it
    is never renamed into place (it would describe batches that are gone)."""
    import threading

    from moldau.storage.log import _SNAPSHOT_WRITER

    directory = tmp_path / "t-0"
    log = open_log(directory)
    append(log, txn_batch(1, 0, 0))  # 0-1
    append(log, txn_batch(2, 0, 0))  # 2-3
    gate = threading.Event()
    _SNAPSHOT_WRITER.submit(gate.wait, 10)  # the writer is busy elsewhere
    log.roll()  # snapshot at 4, queued
    log.truncate_to(2)
    gate.set()
    log.wait_for_snapshot()
    assert list_snapshots(directory) == []
    assert not [n for n in os.listdir(directory) if n.endswith(".tmp")]
    assert log.txn_state.ongoing == {1: 0}
