"""Both metadata store backends keep topics, configs and producer id blocks."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from moldau.metastore import LocalMetaStore, MemoryMetaStore, PartitionState, TopicRecord
from moldau.metastore.store import TopicExistsError


def _topic(name: str) -> TopicRecord:
    return TopicRecord(name, uuid.uuid4(), {0: PartitionState(leader=0, replicas=[0], isr=[0])}, {"retention.ms": "5"})


@pytest.mark.parametrize("backend", ["memory", "local"])
def test_create_update_delete(tmp_path: Path, backend: str) -> None:
    async def scenario() -> None:
        store = MemoryMetaStore() if backend == "memory" else LocalMetaStore(tmp_path)
        image = await store.load()
        assert image.topics == {}
        topic = _topic("a")
        await store.create_topic(topic)
        with pytest.raises(TopicExistsError):
            await store.create_topic(_topic("a"))
        topic.partitions[1] = PartitionState(leader=0, replicas=[0], isr=[0])
        await store.update_topic(topic)
        first = await store.allocate_producer_ids(10)
        second = await store.allocate_producer_ids(10)
        assert second == first + 10
        image = await store.load()
        assert set(image.topics["a"].partitions) == {0, 1}
        await store.delete_topic("a")
        assert (await store.load()).topics == {}

    asyncio.run(scenario())


def test_local_store_survives_reopen(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = LocalMetaStore(tmp_path)
        cluster_id = (await store.load()).cluster_id
        topic = _topic("kept")
        await store.create_topic(topic)
        await store.allocate_producer_ids(1000)
        reopened = await LocalMetaStore(tmp_path).load()
        assert reopened.cluster_id == cluster_id
        assert reopened.topics["kept"].topic_id == topic.topic_id
        assert reopened.topics["kept"].configs == {"retention.ms": "5"}
        assert reopened.next_producer_id == 1000

    asyncio.run(scenario())


def test_single_node_membership_is_a_cluster_of_one() -> None:
    from moldau.metastore.store import BrokerChanged, BrokerInfo, ControllerChanged

    async def scenario() -> None:
        store = MemoryMetaStore()
        await store.load()
        changes = store.watch()
        assert store.brokers() == [] and store.controller() is None
        me = BrokerInfo(3, "127.0.0.1", 9092, "r1")
        await store.register_broker(me, session_timeout_ms=9000)
        await store.campaign()
        assert store.brokers() == [me]
        assert store.controller() is not None and store.controller().broker_id == 3
        first = await asyncio.wait_for(changes.__anext__(), 1)
        second = await asyncio.wait_for(changes.__anext__(), 1)
        assert isinstance(first, BrokerChanged) and first.info == me
        assert isinstance(second, ControllerChanged) and second.controller == store.controller()
        changes.close()
        assert [c async for c in changes] == []

    asyncio.run(scenario())


@pytest.mark.parametrize("backend", ["memory", "local"])
def test_security_entries_are_kept_and_survive_reopen(tmp_path: Path, backend: str) -> None:
    async def scenario() -> None:
        store = MemoryMetaStore() if backend == "memory" else LocalMetaStore(tmp_path)
        await store.load()
        await store.update_security("acls", {"a": "", "b/c": ""})
        await store.update_security("acls", {"a": None})
        await store.update_security("quotas", {"q": '{"producer_byte_rate": 5.0}'})
        image = await store.load()
        assert image.security == {"acls": {"b/c": ""}, "quotas": {"q": '{"producer_byte_rate": 5.0}'}}
        if backend == "local":
            assert (await LocalMetaStore(tmp_path).load()).security == image.security

    asyncio.run(scenario())
