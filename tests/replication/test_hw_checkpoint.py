"""The high-watermark checkpoint (``replication-offset-checkpoint``): Kafka's file format,
a restarted replica starting from the checkpointed high watermark (never above its log
end), and a broker writing it at shutdown and reading it at start."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from tests.storage.helpers import open_log

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.metastore.memory import MemoryMetaStore
from moldau.metastore.store import BrokerInfo, PartitionState, TopicRecord
from moldau.records import RecordInput, build_batch
from moldau.replication.hw_checkpoint import REPLICATION_OFFSET_CHECKPOINT, HighWatermarkCheckpoint
from moldau.replication.partition import Partition


def _fill(path: Path, n: int):
    log = open_log(path)
    for i in range(n):
        log.append_as_leader(memoryview(bytearray(build_batch([RecordInput(b"k", b"v%d" % i)]))),
                             leader_epoch=0, now_ms=0)
    return log


def test_the_file_is_kafkas_text_format_and_unchanged_snapshots_are_not_rewritten(tmp_path: Path) -> None:
    checkpoint = HighWatermarkCheckpoint(tmp_path)
    assert checkpoint.read() == {}
    assert checkpoint.write({("orders", 1): 99, ("orders", 0): 1234})
    assert (tmp_path / REPLICATION_OFFSET_CHECKPOINT).read_text() == "0\n2\norders 0 1234\norders 1 99\n"
    assert not checkpoint.write({("orders", 0): 1234, ("orders", 1): 99})
    assert HighWatermarkCheckpoint(tmp_path).read() == {("orders", 0): 1234, ("orders", 1): 99}
    (tmp_path / REPLICATION_OFFSET_CHECKPOINT).write_text("0\n3\norders 0 1\n")
    assert HighWatermarkCheckpoint(tmp_path).read() == {}  # unreadable: as if absent, as Kafka


def test_a_replica_starts_from_the_checkpointed_high_watermark_within_its_log(tmp_path: Path) -> None:
    log = _fill(tmp_path / "t-0", 10)

    def replica(hw: int | None, isr: list[int]) -> Partition:
        return Partition("t", 0, uuid.uuid4(), log, broker_id=1, leader=2, leader_epoch=3,
                         replicas=[1, 2, 3], isr=isr, high_watermark=hw)

    assert replica(7, [1, 2, 3]).high_watermark == 7
    assert replica(25, [1, 2, 3]).high_watermark == 10  # the log lost its tail in a crash
    assert replica(None, [1, 2, 3]).high_watermark == 0  # nothing known: the log start
    assert replica(3, [1]).high_watermark == 10  # a cluster of one: its log end


def test_a_broker_writes_it_at_shutdown_and_reads_it_at_start(tmp_path: Path) -> None:
    store = MemoryMetaStore()
    state = PartitionState(1, 0, [1, 2], [1, 2], 0)

    async def broker() -> Broker:
        b = Broker(BrokerConfig({"node.id": "1"}), tmp_path, store, Endpoint("127.0.0.1", 9))
        await b.start()
        await store.register_broker(BrokerInfo(1, "127.0.0.1", 9), 2000)
        return b

    async def first() -> None:
        b = await broker()
        await store.create_topic(TopicRecord("t", uuid.uuid4(), {0: state}))
        b.apply_topic(await store.get_topic("t"))
        leader = b.partition("t", 0)
        for i in range(5):
            leader.append_as_leader(memoryview(bytearray(build_batch([RecordInput(b"k", b"%d" % i)]))), -1, 0)
        leader.update_follower_fetch(2, 3)  # broker 2 has the first three records
        assert leader.high_watermark == 3
        await b.stop()

    async def second() -> int:
        b = await broker()
        try:
            return b.partition("t", 0).high_watermark
        finally:
            await b.stop()

    asyncio.run(first())
    assert HighWatermarkCheckpoint(tmp_path).read() == {("t", 0): 3}
    assert asyncio.run(second()) == 3  # not 0: consumers see the committed records at once
