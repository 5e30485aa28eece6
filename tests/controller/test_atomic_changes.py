"""State changes survive the cancellation of the request that asked for them.

A connection cancels its handler's task when the client hangs up. These tests cancel
the requester while the metadata store is in the middle of a save (the store writes,
then waits on a gate), and check that the broker ends up where the store is: topics
created, deleted and grown, dynamic configs set, producer id blocks used. Also that a
topic the store holds but the broker never applied is applied, not refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.handlers.metadata import auto_create
from moldau.metastore.local import LocalMetaStore
from moldau.metastore.memory import MemoryMetaStore
from moldau.metastore.store import TopicRecord
from moldau.protocol.errors import ErrorCode, KafkaError


class SlowStore(MemoryMetaStore):
    """Writes at once, then lingers in the save until the gate opens (a slow fsync)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()

    async def _linger(self) -> None:
        self.entered.set()
        await self.gate.wait()

    async def create_topic(self, topic: TopicRecord) -> None:
        await super().create_topic(topic)
        await self._linger()

    async def update_topic(self, topic: TopicRecord) -> None:
        await super().update_topic(topic)
        await self._linger()

    async def delete_topic(self, name: str) -> None:
        await super().delete_topic(name)
        await self._linger()

    async def set_broker_configs(self, scope: str, configs: dict[str, str]) -> None:
        await super().set_broker_configs(scope, configs)
        await self._linger()

    async def allocate_producer_ids(self, count: int) -> int:
        first = await super().allocate_producer_ids(count)
        await self._linger()
        return first


async def _broker(path: Path, store: SlowStore) -> Broker:
    broker = Broker(BrokerConfig({"num.partitions": "3"}), path, store, Endpoint("127.0.0.1", 9))
    await broker.start()
    return broker


async def _cancel_mid_save(store: SlowStore, coro) -> None:
    """Start ``coro`` as a request would, cancel it inside the store's save, let the save end."""
    store.hold()
    task = asyncio.ensure_future(coro)
    await asyncio.wait_for(store.entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store.gate.set()


def _run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario, 30))


def test_create_cancelled_mid_save_is_applied(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowStore()
        broker = await _broker(tmp_path, store)
        plan = broker.controller.plan_topic("t", 3, 1, {})
        await _cancel_mid_save(store, broker.controller.create_topic(plan))
        await broker.changes.drain()
        assert "t" in store.image.topics
        assert sorted(broker.topics["t"].partitions) == [0, 1, 2]
        assert all(broker.partition("t", i) is not None for i in range(3))
        await broker.stop()

    _run(scenario())


def test_auto_create_cancelled_then_asked_again_answers_the_topic(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowStore()
        broker = await _broker(tmp_path, store)
        await _cancel_mid_save(store, auto_create(broker, "auto"))
        # The client's next Metadata request: the metadata handler describes the topic
        # when creation says TOPIC_ALREADY_EXISTS and the broker has it.
        with pytest.raises(KafkaError) as raised:
            await auto_create(broker, "auto")
        assert raised.value.code is ErrorCode.TOPIC_ALREADY_EXISTS
        assert len(broker.topics["auto"].partitions) == 3
        assert broker.partition("auto", 2) is not None
        await broker.stop()

    _run(scenario())


def test_topic_stored_but_not_applied_is_healed(tmp_path: Path) -> None:
    """The state the bug left behind (an older broker's cut-short create) is repaired."""

    async def scenario() -> None:
        store = SlowStore()
        broker = await _broker(tmp_path, store)
        plan = broker.controller.plan_topic("orphan", 2, 1, {})
        await store.create_topic(plan)  # in the store, never applied
        assert "orphan" not in broker.topics
        again = broker.controller.plan_topic("orphan", 2, 1, {})
        with pytest.raises(KafkaError) as raised:
            await broker.controller.create_topic(again)
        assert raised.value.code is ErrorCode.TOPIC_ALREADY_EXISTS
        assert broker.topics["orphan"].topic_id == plan.topic_id
        assert broker.partition("orphan", 1) is not None
        await broker.stop()

    _run(scenario())


def test_delete_cancelled_mid_save_is_removed(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowStore()
        broker = await _broker(tmp_path, store)
        await broker.controller.create_topic(broker.controller.plan_topic("gone", 2, 1, {}))
        await _cancel_mid_save(store, broker.controller.delete_topic("gone"))
        await broker.changes.drain()
        assert "gone" not in store.image.topics
        assert "gone" not in broker.topics
        assert broker.partition("gone", 0) is None
        await broker.stop()

    _run(scenario())


def test_partitions_and_configs_cancelled_mid_save_are_applied(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowStore()
        broker = await _broker(tmp_path, store)
        await broker.controller.create_topic(broker.controller.plan_topic("grow", 1, 1, {}))
        plan = broker.controller.plan_partitions("grow", 4, None)
        await _cancel_mid_save(store, broker.controller.update_topic(plan))
        topic = broker.topics["grow"]
        await _cancel_mid_save(
            store,
            broker.controller.update_topic(TopicRecord("grow", topic.topic_id, dict(topic.partitions), {"retention.ms": "1234"})),
        )
        await _cancel_mid_save(store, broker.set_dynamic_configs("", {"log.retention.ms": "4321"}))
        await broker.changes.drain()
        assert sorted(store.image.topics["grow"].partitions) == [0, 1, 2, 3]
        assert broker.partition("grow", 3) is not None
        assert broker.partition("grow", 0).log.config.retention_ms == 1234
        assert store.image.broker_configs[""] == {"log.retention.ms": "4321"}
        assert broker.config.int("log.retention.ms") == 4321
        await broker.stop()

    _run(scenario())


def test_update_planned_before_an_earlier_change_keeps_it(tmp_path: Path) -> None:
    """CreatePartitions and AlterConfigs planned from the same state both land."""

    async def scenario() -> None:
        store = SlowStore()
        broker = await _broker(tmp_path, store)
        await broker.controller.create_topic(broker.controller.plan_topic("both", 1, 1, {}))
        topic = broker.topics["both"]
        grow = broker.controller.plan_partitions("both", 3, None)
        configure = TopicRecord("both", topic.topic_id, dict(topic.partitions), {"retention.ms": "777"})
        await asyncio.gather(broker.controller.update_topic(grow), broker.controller.update_topic(configure))
        stored = store.image.topics["both"]
        assert sorted(stored.partitions) == [0, 1, 2]
        assert stored.configs == {"retention.ms": "777"}
        assert broker.topics["both"].configs == {"retention.ms": "777"}
        await broker.stop()

    _run(scenario())


def test_update_of_a_topic_deleted_meanwhile_does_not_bring_it_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowStore()
        broker = await _broker(tmp_path, store)
        await broker.controller.create_topic(broker.controller.plan_topic("d", 1, 1, {}))
        topic = broker.topics["d"]
        late = TopicRecord("d", topic.topic_id, dict(topic.partitions), {"retention.ms": "5"})
        results = await asyncio.gather(
            broker.controller.delete_topic("d"), broker.controller.update_topic(late), return_exceptions=True
        )
        assert results[0] is None
        assert isinstance(results[1], KafkaError) and results[1].code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert "d" not in store.image.topics and "d" not in broker.topics
        await broker.stop()

    _run(scenario())


def test_producer_id_block_reserved_for_a_cancelled_request_is_used(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowStore()
        broker = await _broker(tmp_path, store)
        await _cancel_mid_save(store, broker.producer_ids.generate())
        ids = [await broker.producer_ids.generate() for _ in range(3)]
        assert ids == [0, 1, 2]
        assert store.image.next_producer_id == 1000  # one block, not two
        await broker.stop()

    _run(scenario())


def test_local_store_write_cancelled_completes_and_does_not_overlap(tmp_path: Path, monkeypatch) -> None:
    import time

    import moldau.metastore.local as local

    real = local._write_atomically
    writing = []

    def slow_write(path: Path, data: bytes) -> None:
        writing.append(1)
        assert len(writing) == 1, "two writes of the metadata file at once"
        time.sleep(0.2)
        real(path, data)
        writing.pop()

    async def scenario() -> None:
        store = LocalMetaStore(tmp_path)
        await store.load()
        monkeypatch.setattr(local, "_write_atomically", slow_write)
        first = asyncio.ensure_future(store.create_topic(_record("a")))
        await asyncio.sleep(0.05)
        first.cancel()
        await store.create_topic(_record("b"))
        monkeypatch.setattr(local, "_write_atomically", real)
        reopened = await LocalMetaStore(tmp_path).load()
        assert set(reopened.topics) == {"a", "b"}

    _run(scenario())


def test_local_store_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    import moldau.metastore.local as local

    def failing_write(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    async def scenario() -> None:
        store = LocalMetaStore(tmp_path)
        await store.load()
        monkeypatch.setattr(local, "_write_atomically", failing_write)
        with pytest.raises(OSError):
            await store.create_topic(_record("full"))
        assert await store.get_topic("full") is None
        with pytest.raises(OSError):
            await store.allocate_producer_ids(10)
        monkeypatch.undo()
        assert await store.allocate_producer_ids(10) == 0

    _run(scenario())


def _record(name: str) -> TopicRecord:
    import uuid

    from moldau.metastore.store import PartitionState

    return TopicRecord(name, uuid.uuid4(), {0: PartitionState(leader=0, replicas=[0], isr=[0])})
