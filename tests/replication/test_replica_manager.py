"""The replica manager's ISR writes and the controller's elections, in-process against
the in-memory metadata store: compare-and-swap on the partition epoch, applied to the
broker's partitions, and a stale write refused."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from moldau.broker.broker import Broker, Endpoint
from moldau.broker.cluster import LeaderElector
from moldau.config.broker import BrokerConfig
from moldau.metastore.memory import MemoryMetaStore
from moldau.metastore.store import BrokerInfo, PartitionState, StaleEpochError, TopicRecord


async def _broker(path: Path, state: PartitionState) -> Broker:
    store = MemoryMetaStore()
    broker = Broker(BrokerConfig({"node.id": "1", "replica.lag.time.max.ms": "100"}), path, store,
                    Endpoint("127.0.0.1", 9))
    await broker.start()
    await store.register_broker(BrokerInfo(1, "127.0.0.1", 9), 2000)
    topic = TopicRecord("t", uuid.uuid4(), {0: state})
    await store.create_topic(topic)
    broker.apply_topic(await store.get_topic("t"))
    return broker


async def _settle(broker: Broker) -> None:
    for _ in range(50):
        if not broker.replica_manager._tasks:
            return
        await asyncio.sleep(0.01)


def test_the_leader_shrinks_and_expands_the_isr_through_the_store(tmp_path: Path) -> None:
    async def run() -> None:
        broker = await _broker(tmp_path, PartitionState(1, 0, [1, 2], [1, 2], 0))
        try:
            partition = broker.partition("t", 0)
            assert partition.is_leader and partition.isr == [1, 2]
            await asyncio.sleep(0.15)  # follower 2 never fetched: lagging past 100 ms
            broker.replica_manager.maybe_change_isr(partition)
            await _settle(broker)
            stored = (await broker.store.get_topic("t")).partitions[0]
            assert stored == PartitionState(1, 0, [1, 2], [1], 1)
            assert partition.isr == [1] and partition.partition_epoch == 1
            # it fetches up to the high watermark: back in, epoch 2
            partition.update_follower_fetch(2, partition.high_watermark)
            broker.replica_manager.maybe_change_isr(partition)
            await _settle(broker)
            assert (await broker.store.get_topic("t")).partitions[0] == PartitionState(1, 0, [1, 2], [1, 2], 2)
            assert partition.isr == [1, 2]
            # a write planned on an older partition epoch loses
            with pytest.raises(StaleEpochError):
                await broker.store.alter_partition("t", 0, PartitionState(1, 0, [1, 2], [1], 2), 1)
        finally:
            await broker.stop()

    asyncio.run(run())


def test_the_controller_elects_a_live_isr_member(tmp_path: Path) -> None:
    async def run() -> None:
        broker = await _broker(tmp_path, PartitionState(2, 4, [2, 1], [2, 1], 7))
        try:
            await broker.store.campaign()
            partition = broker.partition("t", 0)
            assert not partition.is_leader
            assert await LeaderElector(broker).elect_once() == 1  # broker 2 is not live
            assert (await broker.store.get_topic("t")).partitions[0] == PartitionState(1, 5, [2, 1], [1], 8)
            assert partition.is_leader and partition.leader_epoch == 5
            assert partition.epochs.latest_epoch == 5
            assert await LeaderElector(broker).elect_once() == 0
        finally:
            await broker.stop()

    asyncio.run(run())
