"""The leader's replication state in-process: high watermark by the ISR's log ends,
ISR shrink and expand by replica.lag.time.max.ms, a follower appending what the leader
read for it, truncation by leader epoch, and the controller's clean election rule."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.storage.helpers import open_log

from moldau.controller.election import reconcile
from moldau.metastore.store import PartitionState
from moldau.records import RecordInput, build_batch
from moldau.replication.partition import Partition
from moldau.storage.leader_epoch import LEADER_EPOCH_CHECKPOINT, LeaderEpochCache, read_checkpoint

TOPIC_ID = uuid.uuid4()


def _replica(tmp_path: Path, broker_id: int, leader: int, epoch: int = 1, isr=(1, 2, 3)) -> Partition:
    log = open_log(tmp_path / f"b{broker_id}" / "t-0")
    partition = Partition("t", 0, TOPIC_ID, log, broker_id=broker_id, leader=-1, leader_epoch=-1,
                          replicas=[1, 2, 3], isr=list(isr))
    partition.apply_state(leader, epoch, [1, 2, 3], list(isr), 1)
    return partition


def _produce(partition: Partition, n: int = 1, acks: int = -1) -> int:
    batch = build_batch([RecordInput(b"k", b"v%d" % i) for i in range(n)])
    return partition.append_as_leader(memoryview(bytearray(batch)), acks, 0).last_offset


def _replicate(leader: Partition, follower: Partition, now_ms: int | None = None) -> None:
    """One replica fetch: the leader notes the fetch offset, the follower appends."""
    offset = follower.log.log_end_offset
    leader.update_follower_fetch(follower.broker_id, offset, now_ms)
    read = leader.read_for_follower(offset, 1 << 20, min_one_message=True)
    data = memoryview(b"") if read.records is None else memoryview(read.records.chunks[0].read())
    follower.append_as_follower(data, read.high_watermark)


def test_high_watermark_is_the_smallest_log_end_of_the_isr(tmp_path: Path) -> None:
    leader, f2, f3 = (_replica(tmp_path, b, leader=1) for b in (1, 2, 3))
    assert leader.is_leader and not f2.is_leader
    last = _produce(leader, 3)
    assert last == 2 and leader.high_watermark == 0  # nobody has fetched yet
    _replicate(leader, f2)
    assert leader.high_watermark == 0  # broker 3 has not fetched in this epoch
    _replicate(leader, f3)
    assert leader.high_watermark == 0  # fetch offsets say 0: they only now have the data
    _replicate(leader, f2)
    assert leader.high_watermark == 0
    _replicate(leader, f3)
    assert leader.high_watermark == 3
    _replicate(leader, f2)  # the follower learns the high watermark from the answer
    assert f2.high_watermark == 3 and f2.log.log_end_offset == 3
    # reads for consumers stop at the high watermark; replica reads go to the log end
    _produce(leader, 2)
    assert leader.read(3, 1 << 20, min_one_message=True).records is None
    assert leader.read_for_follower(3, 1 << 20, min_one_message=True).records is not None


def test_isr_shrinks_after_the_lag_time_and_expands_when_caught_up(tmp_path: Path) -> None:
    leader, f2, f3 = (_replica(tmp_path, b, leader=1) for b in (1, 2, 3))
    _produce(leader, 2)
    now = 10_000_000_000
    for _ in range(2):
        _replicate(leader, f2, now)
        _replicate(leader, f3, now)
    assert leader.high_watermark == 2 and leader.isr_change(30_000, now) is None
    _produce(leader, 1)
    _replicate(leader, f2, now + 1000)  # broker 3 stops fetching
    _replicate(leader, f2, now + 1000)
    assert leader.isr_change(30_000, now + 20_000) is None
    assert leader.isr_change(30_000, now + 31_000) == [1, 2]
    leader.apply_state(1, 1, [1, 2, 3], [1, 2], 2)  # as the store would deliver it
    _replicate(leader, f2, now + 31_000)
    assert leader.high_watermark == 3  # broker 3 no longer holds it back
    # broker 3 comes back: it joins once it reaches the high watermark
    _replicate(leader, f3, now + 32_000)
    assert leader.isr_change(30_000, now + 32_000) is None or f3.log.log_end_offset >= 3
    _replicate(leader, f3, now + 32_100)
    assert leader.isr_change(30_000, now + 32_100) == [1, 2, 3]


def test_acks_all_needs_min_insync_replicas(tmp_path: Path) -> None:
    import pytest

    from moldau.protocol.errors import ErrorCode, KafkaError

    leader = _replica(tmp_path, 1, leader=1, isr=(1,))
    leader.min_insync_replicas = 2
    with pytest.raises(KafkaError) as raised:
        _produce(leader, 1, acks=-1)
    assert raised.value.code == ErrorCode.NOT_ENOUGH_REPLICAS
    assert leader.log.log_end_offset == 0
    _produce(leader, 1, acks=1)  # acks=1 does not care
    assert leader.log.log_end_offset == 1


def test_a_diverged_tail_is_truncated_by_leader_epoch(tmp_path: Path) -> None:
    old_leader, f2, f3 = (_replica(tmp_path, b, leader=1) for b in (1, 2, 3))
    _produce(old_leader, 2)
    for _ in range(2):
        _replicate(old_leader, f2)
        _replicate(old_leader, f3)
    assert old_leader.high_watermark == 2
    _produce(old_leader, 3)  # never replicated: offsets 2-4 exist only on broker 1
    # broker 2 becomes leader in epoch 2 and takes writes of its own
    for p in (old_leader, f2, f3):
        p.apply_state(2, 2, [1, 2, 3], [2, 3], 2)
    assert f2.is_leader and f2.epochs.entries == [(1, 0), (2, 2)] and f2.epochs.dirty
    _produce(f2, 1)
    assert read_checkpoint(tmp_path / "b2" / "t-0" / LEADER_EPOCH_CHECKPOINT) == [(1, 0), (2, 2)]
    # broker 1 asks where its latest epoch (1) ended in the leader's history: at 2
    epoch, end = f2.end_offset_for_epoch(old_leader.epochs.latest_epoch)
    assert (epoch, end) == (1, 2)
    old_leader.truncate_to(end)
    assert old_leader.log.log_end_offset == 2
    _replicate(f2, old_leader)
    assert old_leader.log.log_end_offset == 3
    assert old_leader.epochs.entries == [(1, 0), (2, 2)]
    checkpoint = tmp_path / "b1" / "t-0" / LEADER_EPOCH_CHECKPOINT
    assert read_checkpoint(checkpoint) == [(1, 0), (2, 2)]
    assert checkpoint.read_text() == "0\n2\n1 0\n2 2\n"


def test_leader_epoch_cache_lookups(tmp_path: Path) -> None:
    cache = LeaderEpochCache(tmp_path / LEADER_EPOCH_CHECKPOINT)
    assert cache.end_offset_for(3, 100) == (-1, -1)
    cache.assign(1, 0)
    cache.assign(3, 40)
    cache.assign(5, 70)
    assert cache.end_offset_for(5, 100) == (5, 100)
    assert cache.end_offset_for(4, 100) == (3, 70)
    assert cache.end_offset_for(3, 100) == (3, 70)
    assert cache.end_offset_for(0, 100) == (0, 0)
    assert cache.end_offset_for(6, 100) == (-1, -1)
    cache.truncate_from_end(50)
    assert cache.entries == [(1, 0), (3, 40)]
    assert LeaderEpochCache(tmp_path / LEADER_EPOCH_CHECKPOINT).entries == [(1, 0), (3, 40)]
    # a new leader's epoch is written with its first batch, not when it is assigned
    cache.assign(4, 50, write=False)
    assert cache.end_offset_for(4, 60) == (4, 60)
    assert read_checkpoint(tmp_path / LEADER_EPOCH_CHECKPOINT) == [(1, 0), (3, 40)]
    cache.flush()
    assert read_checkpoint(tmp_path / LEADER_EPOCH_CHECKPOINT) == [(1, 0), (3, 40), (4, 50)]


def test_clean_election() -> None:
    state = PartitionState(leader=1, leader_epoch=4, replicas=[1, 2, 3], isr=[1, 2, 3], partition_epoch=9)
    assert reconcile(state, {1, 2, 3}) is None
    moved = reconcile(state, {2, 3})
    assert moved == PartitionState(leader=2, leader_epoch=5, replicas=[1, 2, 3], isr=[2, 3], partition_epoch=10)
    # a dead follower leaves the ISR without a new leader epoch
    assert reconcile(state, {1, 2}) == PartitionState(1, 4, [1, 2, 3], [1, 2], 10)
    # no live ISR member: offline, the ISR kept for a clean return
    narrow = PartitionState(leader=1, leader_epoch=4, replicas=[1, 2, 3], isr=[1], partition_epoch=9)
    offline = reconcile(narrow, {2, 3})
    assert offline == PartitionState(-1, 5, [1, 2, 3], [1], 10)
    assert reconcile(offline, {2, 3}) is None
    assert reconcile(offline, {1, 2, 3}) == PartitionState(1, 6, [1, 2, 3], [1], 11)


def test_min_insync_replicas_is_bounded_by_the_replica_count(tmp_path: Path) -> None:
    """Kafka's effective min ISR (3.7+): min.insync.replicas above the replication
    factor counts as the factor; below it, it is enforced as set."""
    log = open_log(tmp_path / "single" / "t-0")
    single = Partition("t", 0, TOPIC_ID, log, broker_id=1, leader=-1, leader_epoch=-1, replicas=[1], isr=[1])
    single.apply_state(1, 1, [1], [1], 1)
    single.min_insync_replicas = 2
    assert single.effective_min_isr == 1
    _produce(single, 1, acks=-1)  # accepted: one replica is all there can be
    assert single.log.log_end_offset == 1
    three = _replica(tmp_path, 1, leader=1, isr=(1,))
    three.min_insync_replicas = 5
    assert three.effective_min_isr == 3
