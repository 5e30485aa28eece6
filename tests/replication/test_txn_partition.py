"""Transactions on a replicated partition in-process: the LSO follows the ISR, markers
replicate like any batch, a new leader knows the open transactions, bad markers and
stale producers get Kafka's codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import RecordInput, build_batch
from moldau.replication.partition import Partition
from moldau.storage import FileCache

from .test_high_watermark_isr import _replica, _replicate


def _txn(partition: Partition, pid: int, epoch: int, seq: int, n: int = 2) -> int:
    batch = build_batch(
        [RecordInput(b"k", b"v%d" % i) for i in range(n)],
        producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=True,
    )
    return partition.append_as_leader(memoryview(bytearray(batch)), -1, 0).first_offset


def _sync(leader: Partition, *followers: Partition) -> None:
    for _ in range(2):
        for f in followers:
            _replicate(leader, f)


def test_lso_waits_for_the_marker_to_reach_the_isr(tmp_path: Path) -> None:
    leader, f2 = (_replica(tmp_path, b, leader=1, isr=(1, 2)) for b in (1, 2))
    first = _txn(leader, 10, 0, 0)
    _sync(leader, f2)
    assert leader.high_watermark == 2 and leader.last_stable_offset == first == 0
    assert f2.last_stable_offset == 0  # the follower knows the open transaction too
    info = leader.write_txn_marker(10, 0, commit=True, coordinator_epoch=1, now_ms=0)
    assert info.first_offset == 2
    # decided, but the marker is above the high watermark: not stable yet (Kafka's
    # unreplicated transactions)
    assert leader.high_watermark == 2 and leader.last_stable_offset == 0
    _sync(leader, f2)
    assert leader.high_watermark == 3 and leader.last_stable_offset == 3
    assert f2.last_stable_offset == 3


def test_a_new_leader_knows_the_open_transactions_and_their_aborts(tmp_path: Path) -> None:
    leader, f2 = (_replica(tmp_path, b, leader=1, isr=(1, 2)) for b in (1, 2))
    _txn(leader, 10, 0, 0)  # 0-1
    _txn(leader, 11, 0, 0)  # 2-3
    leader.write_txn_marker(11, 0, commit=False, coordinator_epoch=1, now_ms=0)  # 4
    _sync(leader, f2)
    # broker 2 takes over
    f2.apply_state(2, 2, [1, 2, 3], [2], 2)
    assert f2.is_leader
    assert f2.last_stable_offset == 0
    assert [a.producer_id for a in f2.log.collect_aborted(0, 5)] == [11]
    f2.write_txn_marker(10, 0, commit=False, coordinator_epoch=2, now_ms=0)
    assert f2.last_stable_offset == f2.log.log_end_offset == 6
    read = f2.read_committed(0, 1 << 20, min_one_message=True)
    assert [a.producer_id for a in read.aborted] == [11, 10]  # in marker order


def test_markers_and_producers_are_fenced(tmp_path: Path) -> None:
    leader = _replica(tmp_path, 1, leader=1, isr=(1,))
    _txn(leader, 10, 3, 0)
    leader.write_txn_marker(10, 4, commit=False, coordinator_epoch=7, now_ms=0)  # fencing abort
    with pytest.raises(KafkaError) as stale:
        _txn(leader, 10, 3, 2)
    assert stale.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    with pytest.raises(KafkaError) as old_coordinator:
        leader.write_txn_marker(10, 4, commit=True, coordinator_epoch=6, now_ms=0)
    assert old_coordinator.value.code == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    with pytest.raises(KafkaError) as old_epoch:
        leader.write_txn_marker(10, 3, commit=True, coordinator_epoch=7, now_ms=0)
    assert old_epoch.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    # transactions version 2: a marker must carry a newer epoch than the producer's
    with pytest.raises(KafkaError) as tv2:
        leader.write_txn_marker(10, 4, commit=True, coordinator_epoch=7, now_ms=0, transaction_version=2)
    assert tv2.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    leader.write_txn_marker(10, 5, commit=True, coordinator_epoch=7, now_ms=0, transaction_version=2)
    # the new epoch's transaction starts afresh
    assert _txn(leader, 10, 5, 0) == leader.log.log_end_offset - 2
    follower = _replica(tmp_path, 2, leader=1, isr=(1,))
    with pytest.raises(KafkaError) as not_leader:
        follower.write_txn_marker(10, 5, commit=True, coordinator_epoch=7, now_ms=0)
    assert not_leader.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER


def test_a_restarted_leader_knows_producers_beyond_the_scanned_tail(tmp_path: Path, monkeypatch) -> None:
    from moldau.replication import partition as partition_module

    leader = _replica(tmp_path, 1, leader=1, isr=(1,))
    batch = build_batch([RecordInput(b"k", b"v"), RecordInput(b"k", b"w")], producer_id=5, producer_epoch=2,
                        base_sequence=0)
    first = leader.append_as_leader(memoryview(bytearray(batch)), -1, 0).first_offset
    leader.log.close(flush=True)
    log = type(leader.log).open(leader.log.dir, leader.log.config, file_cache=FileCache(8),
                                recovery_point=0, log_start_offset=0, clean_shutdown=True)
    again = Partition("t", 0, leader.topic_id, log, broker_id=1, leader=-1, leader_epoch=-1, replicas=[1, 2, 3],
                      isr=[1])
    again.apply_state(1, 2, [1, 2, 3], [1], 2)
    # the tail scan sees nothing (as for a producer further back): the snapshot must tell
    monkeypatch.setattr(partition_module, "rebuild_from_log", lambda state, log: None)
    retry = again.append_as_leader(memoryview(bytearray(batch)), -1, 0)
    assert retry.first_offset == first and retry.record_count == 0  # a duplicate
    gap = build_batch([RecordInput(b"k", b"x")], producer_id=5, producer_epoch=2, base_sequence=7)
    with pytest.raises(KafkaError) as out_of_order:
        again.append_as_leader(memoryview(bytearray(gap)), -1, 0)
    assert out_of_order.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_idle_producers_expire_unless_their_transaction_is_open(tmp_path: Path) -> None:
    leader = _replica(tmp_path, 1, leader=1, isr=(1,))
    _txn(leader, 10, 0, 0)  # open: kept however old
    idle = build_batch([RecordInput(b"k", b"v", timestamp=1_000)], producer_id=11, producer_epoch=0, base_sequence=0)
    leader.append_as_leader(memoryview(bytearray(idle)), -1, 0)
    assert leader.remove_expired_producers(now_ms=1_000 + 86_400_000, expiration_ms=86_400_000) == 1
    assert set(leader.log.txn_state.producers) == {10}
    assert 11 not in leader.producer_state.producers


def test_a_fetch_is_told_only_of_the_aborts_its_batches_can_hold(tmp_path: Path) -> None:
    from moldau.storage import LogConfig

    leader = _replica(tmp_path, 1, leader=1, isr=(1,))
    leader.log.config = LogConfig(index_interval_bytes=1)  # every batch indexed
    for pid in range(100, 150):
        _txn(leader, pid, 0, 0)
        leader.write_txn_marker(pid, 0, commit=False, coordinator_epoch=0, now_ms=0)
    whole = leader.read_committed(0, 1 << 20, min_one_message=True)
    assert len(whole.aborted) == 50
    first = leader.read_committed(0, 1, min_one_message=True)  # one batch: offsets 0-1
    assert [a.producer_id for a in first.aborted] == [100]
    later = leader.read_committed(30, 1, min_one_message=True)  # the batch of producer 110
    assert [a.producer_id for a in later.aborted] == [110]
