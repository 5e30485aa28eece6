"""A leader's self-fencing in-process: with its broker's session lapsed it stops acting
as leader at once (appends, delayed produces, ISR proposals), acts again only once the
session is resumed, and a leader whose ISR change cannot be written keeps its high
watermark bounded by the ISR it has."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from tests.storage.helpers import open_log

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.metastore.memory import MemoryMetaStore
from moldau.metastore.store import BrokerInfo, PartitionState, Session, TopicRecord
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import RecordInput, build_batch
from moldau.replication.partition import Partition


def _batch(n: int = 1) -> memoryview:
    return memoryview(bytearray(build_batch([RecordInput(b"k", b"v%d" % i) for i in range(n)])))


def _leader(tmp_path: Path, session: Session) -> Partition:
    log = open_log(tmp_path / "t-0")
    partition = Partition("t", 0, uuid.uuid4(), log, broker_id=1, leader=-1, leader_epoch=-1,
                          replicas=[1, 2], isr=[1, 2], session=session)
    partition.apply_state(1, 3, [1, 2], [1, 2], 5)
    return partition


def test_a_session_lapses_by_the_clock_and_resumes_only_when_told() -> None:
    session = Session(held=False)
    assert not session.valid()
    assert session.renewed(time.monotonic() + 10) is False  # not resumed yet: stays suspended
    assert not session.valid()
    session.resume()
    assert session.valid()
    assert session.renewed(time.monotonic() + 0.05) is True
    time.sleep(0.06)
    assert not session.valid()  # nobody had to notice: the clock says so
    # a renewal answered after the lapse does not make it valid: the metadata is re-read first
    assert session.renewed(time.monotonic() + 10) is False
    assert not session.valid() and session.suspended
    session.resume()
    assert session.valid()
    assert Session().valid()  # a single node's


def test_a_fenced_leader_refuses_appends_and_isr_changes(tmp_path: Path) -> None:
    session = Session()
    session.renewed(time.monotonic() + 60)
    partition = _leader(tmp_path, session)
    assert partition.is_leader and not partition.fenced
    partition.append_as_leader(_batch(), 1, 0)
    session.valid_until = time.monotonic() - 1  # as if no renewal was answered in time
    assert not partition.is_leader and partition.fenced
    with pytest.raises(KafkaError) as raised:
        partition.append_as_leader(_batch(), 1, 0)
    assert raised.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert partition.log.log_end_offset == 1
    # the follower never fetched: past the lag the leader would shrink the ISR, but not fenced
    assert partition.isr_change(lag_max_ms=0, now_ms=10**12) is None
    session.valid_until = time.monotonic() + 60
    assert partition.is_leader and partition.isr_change(lag_max_ms=0, now_ms=10**12) == [1]
    # its fetches were refused while the leader was fenced: no lag of the follower's
    partition.session_resumed(now_ms=10**12)
    assert partition.isr_change(lag_max_ms=1000, now_ms=10**12 + 500) is None
    assert partition.isr_change(lag_max_ms=1000, now_ms=10**12 + 1500) == [1]


def test_a_delayed_produce_is_answered_not_leader_once_fenced(tmp_path: Path) -> None:
    async def run() -> None:
        session = Session()
        session.renewed(time.monotonic() + 60)
        partition = _leader(tmp_path, session)
        last = partition.append_as_leader(_batch(), -1, 0).last_offset
        waiting = asyncio.ensure_future(partition.wait_high_watermark(last + 1, 30))
        await asyncio.sleep(0.01)
        session.valid_until = time.monotonic() - 1
        partition._wake()  # what the broker does when its session lapses
        assert await asyncio.wait_for(waiting, 1) == ErrorCode.NOT_LEADER_OR_FOLLOWER
        # a follower's fetch arriving after the lapse: the data is there, still no ack
        partition.update_follower_fetch(2, last + 1)
        assert await partition.wait_high_watermark(last + 1, 0.1) == ErrorCode.NOT_LEADER_OR_FOLLOWER

    asyncio.run(run())


class _Unreachable(MemoryMetaStore):
    """A store that cannot take partition state changes (etcd out of reach)."""

    async def alter_partition(self, *args: object, **kwargs: object) -> None:
        raise ConnectionError("etcd unreachable")


def test_an_isr_shrink_that_cannot_be_written_keeps_the_high_watermark(tmp_path: Path) -> None:
    async def run() -> None:
        store = _Unreachable()
        broker = Broker(BrokerConfig({"node.id": "1", "replica.lag.time.max.ms": "100"}), tmp_path, store,
                        Endpoint("127.0.0.1", 9))
        await broker.start()
        try:
            await store.register_broker(BrokerInfo(1, "127.0.0.1", 9), 2000)
            await store.create_topic(TopicRecord("t", uuid.uuid4(), {0: PartitionState(1, 0, [1, 2], [1, 2], 0)}))
            broker.apply_topic(await store.get_topic("t"))
            partition = broker.partition("t", 0)
            first = partition.append_as_leader(_batch(2), -1, 0).last_offset
            partition.update_follower_fetch(2, first + 1)  # follower 2 has the first two
            assert partition.high_watermark == 2
            partition.append_as_leader(_batch(3), -1, 0)
            await asyncio.sleep(0.15)  # follower 2 stopped fetching: it lags past 100 ms
            broker.replica_manager.maybe_change_isr(partition)
            for _ in range(50):
                if not broker.replica_manager._tasks:
                    break
                await asyncio.sleep(0.01)
            # the shrink was not written: the ISR and the high watermark stay where they were
            assert partition.isr == [1, 2] and partition.partition_epoch == 0
            assert partition.high_watermark == 2 and partition.log.log_end_offset == 5
            assert not partition.isr_change_pending  # tried again on the next check
        finally:
            await broker.stop()

    asyncio.run(run())
