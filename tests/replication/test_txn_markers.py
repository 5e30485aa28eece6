"""WriteTxnMarkers' work on the leader, in-process against a small real host: per
partition answers, the wait for the ISR, and the __consumer_offsets listener (the seam
the group coordinator uses for transactional offset commits)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from tests.storage.helpers import open_log

from moldau.ports import TxnMarkerHost
from moldau.protocol.errors import ErrorCode
from moldau.records import RecordInput, build_batch
from moldau.replication.partition import Partition
from moldau.replication.txn_markers import write_txn_markers


class Host:
    def __init__(self) -> None:
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.txn_marker_listeners: list[object] = []

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get((topic, index))


class Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int, int, bool]] = []

    def txn_marker_written(self, topic: str, index: int, producer_id: int, producer_epoch: int, commit: bool) -> None:
        self.calls.append((topic, index, producer_id, producer_epoch, commit))


def _partition(tmp_path: Path, topic: str, *, isr: list[int], leader: int = 1) -> Partition:
    log = open_log(tmp_path / f"{topic}-0")
    p = Partition(topic, 0, uuid.uuid4(), log, broker_id=1, leader=-1, leader_epoch=-1, replicas=[1, 2], isr=isr)
    p.apply_state(leader, 1, [1, 2], isr, 1)
    return p


def _txn(p: Partition, pid: int) -> None:
    batch = build_batch([RecordInput(b"k", b"v")], producer_id=pid, producer_epoch=0, base_sequence=0,
                        is_transactional=True)
    p.append_as_leader(memoryview(bytearray(batch)), -1, 0)


def test_markers_answer_per_partition_and_tell_the_offsets_listener(tmp_path: Path) -> None:
    host = Host()
    listener = Listener()
    host.txn_marker_listeners.append(listener)
    assert isinstance(host, TxnMarkerHost)
    data = host.partitions[("t", 0)] = _partition(tmp_path, "t", isr=[1])
    offsets = host.partitions[("__consumer_offsets", 0)] = _partition(tmp_path, "__consumer_offsets", isr=[1])
    host.partitions[("f", 0)] = _partition(tmp_path, "f", isr=[1, 2], leader=2)
    _txn(data, 9)
    _txn(offsets, 9)
    asked = [("t", 0), ("__consumer_offsets", 0), ("f", 0), ("gone", 0)]
    codes = asyncio.run(write_txn_markers(host, 9, 0, True, 3, asked))
    assert codes == {
        ("t", 0): ErrorCode.NONE,
        ("__consumer_offsets", 0): ErrorCode.NONE,
        ("f", 0): ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ("gone", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    }
    assert listener.calls == [("__consumer_offsets", 0, 9, 0, True)]  # only the offsets topic
    assert data.last_stable_offset == data.log.log_end_offset == 2
    stale = asyncio.run(write_txn_markers(host, 9, 0, False, 2, [("__consumer_offsets", 0)]))
    assert stale == {("__consumer_offsets", 0): ErrorCode.TRANSACTION_COORDINATOR_FENCED}
    assert len(listener.calls) == 1


def test_a_marker_not_replicated_in_time_is_not_told(tmp_path: Path) -> None:
    host = Host()
    listener = Listener()
    host.txn_marker_listeners.append(listener)
    offsets = host.partitions[("__consumer_offsets", 0)] = _partition(tmp_path, "__consumer_offsets", isr=[1, 2])
    _txn(offsets, 9)
    codes = asyncio.run(write_txn_markers(host, 9, 0, True, 0, [("__consumer_offsets", 0)], timeout_s=0.2))
    assert codes == {("__consumer_offsets", 0): ErrorCode.REQUEST_TIMED_OUT}
    assert listener.calls == []
    # the follower catches up: the marker is replicated, the LSO passes it
    offsets.update_follower_fetch(2, offsets.log.log_end_offset)
    assert offsets.last_stable_offset == offsets.log.log_end_offset


def test_the_listener_is_told_even_if_the_request_is_cancelled(tmp_path: Path) -> None:
    host = Host()
    listener = Listener()
    host.txn_marker_listeners.append(listener)
    offsets = host.partitions[("__consumer_offsets", 0)] = _partition(tmp_path, "__consumer_offsets", isr=[1, 2])
    _txn(offsets, 9)

    async def scenario() -> None:
        request = asyncio.ensure_future(write_txn_markers(host, 9, 0, False, 0, [("__consumer_offsets", 0)]))
        await asyncio.sleep(0.05)
        request.cancel()  # the coordinator hung up
        await asyncio.sleep(0.05)
        offsets.update_follower_fetch(2, offsets.log.log_end_offset)  # replicated after all
        for _ in range(50):
            if listener.calls:
                break
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert listener.calls == [("__consumer_offsets", 0, 9, 0, False)]
