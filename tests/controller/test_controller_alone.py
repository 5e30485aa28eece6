"""The controller on its own, without a broker: run against a small, real
implementation of :class:`moldau.ports.ControllerHost` -- an in-memory metadata store,
the broker's own serial change runner, real logs in a temporary directory, and a
topic table that records what is applied. It writes each decision to the store
before it applies it, places replicas over the live brokers, applies a topic the
store holds that this node never applied, and creates many new logs off the loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from moldau.broker.changes import StateChanges
from moldau.config.broker import BrokerConfig
from moldau.controller.controller import PREPARE_IN_THREAD, Controller
from moldau.metastore.memory import MemoryMetaStore
from moldau.metastore.store import BrokerInfo, TopicRecord
from moldau.ports import ControllerHost
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.storage.config import LogConfig
from moldau.storage.log_manager import LogManager

NODE = 1


class TopicTableHost:
    """ControllerHost and nothing more: what it applies is recorded, with whether the
    store already held it at that moment."""

    def __init__(self, path: Path, brokers: list[int]) -> None:
        self.node_id = NODE
        self.config = BrokerConfig({"node.id": str(NODE)})
        self.store = MemoryMetaStore()
        self.changes = StateChanges()
        self.topics: dict[str, TopicRecord] = {}
        self.partitions: dict[tuple[str, int], object] = {}
        self.log_manager = LogManager(path, LogConfig.from_properties(self.config.effective_topic_config({})))
        self.log_manager.load()
        self.brokers = brokers
        #: (topic, was it in the store when applied)
        self.applied: list[tuple[str, bool]] = []
        #: per apply: were this node's logs of the topic all open already
        self.logs_ready: list[bool] = []

    def log_config_for(self, topic: TopicRecord) -> LogConfig:
        return LogConfig.from_properties(self.config.effective_topic_config(topic.configs))

    def live_brokers(self) -> list[BrokerInfo]:
        return [BrokerInfo(b, "127.0.0.1", 9000 + b) for b in self.brokers]

    def apply_topic(self, topic: TopicRecord) -> None:
        local = [i for i, state in topic.partitions.items() if NODE in state.replicas]
        self.logs_ready.append(all(self.log_manager.get_log(topic.name, i) is not None for i in local))
        self.applied.append((topic.name, topic.name in self.store.image.topics))
        self.topics[topic.name] = topic
        for index in local:
            self.partitions[(topic.name, index)] = object()

    def remove_topic(self, name: str) -> None:
        self.topics.pop(name, None)
        self.partitions = {k: v for k, v in self.partitions.items() if k[0] != name}

    async def create_at_controller(self, topic: TopicRecord) -> TopicRecord | None:
        return None  # this host is the controller


def controller_on(host: TopicTableHost) -> Controller:
    seam: ControllerHost = host
    assert isinstance(seam, ControllerHost)
    return Controller(seam)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_decisions_are_stored_before_they_are_applied(tmp_path):
    async def scenario() -> None:
        host = TopicTableHost(tmp_path, brokers=[1, 2, 3])
        controller = controller_on(host)
        plan = controller.plan_topic("orders", 6, 2, {"cleanup.policy": "compact"})
        # placement: every partition on two distinct live brokers, leaders spread
        assert all(len(set(s.replicas)) == 2 and s.leader == s.replicas[0] for s in plan.partitions.values())
        assert {s.leader for s in plan.partitions.values()} == {1, 2, 3}
        await controller.create_topic(plan)
        assert host.applied == [("orders", True)]
        assert (await host.store.get_topic("orders")).partitions == plan.partitions
        assert sorted(host.partitions) == [("orders", i) for i, s in plan.partitions.items() if NODE in s.replicas]

        with pytest.raises(KafkaError) as refused:
            controller.plan_topic("orders", 1, 1, {})
        assert refused.value.code is ErrorCode.TOPIC_ALREADY_EXISTS
        with pytest.raises(KafkaError) as too_many:
            controller.plan_topic("wide", 1, 4, {})
        assert too_many.value.code is ErrorCode.INVALID_REPLICATION_FACTOR

        await controller.delete_topic("orders")
        assert "orders" not in host.topics and await host.store.get_topic("orders") is None
        host.log_manager.shutdown()

    run(scenario())


def test_a_topic_the_store_holds_is_applied_not_created_again(tmp_path):
    async def scenario() -> None:
        host = TopicTableHost(tmp_path, brokers=[NODE])
        controller = controller_on(host)
        elsewhere = controller.plan_topic("made-elsewhere", 2, 1, {})
        await host.store.create_topic(elsewhere)  # another controller, or a create cut short
        with pytest.raises(KafkaError) as exists:
            await controller.create_topic(controller.plan_topic("made-elsewhere", 3, 1, {}))
        assert exists.value.code is ErrorCode.TOPIC_ALREADY_EXISTS
        assert host.topics["made-elsewhere"].topic_id == elsewhere.topic_id
        assert len(host.topics["made-elsewhere"].partitions) == 2
        host.log_manager.shutdown()

    run(scenario())


def test_many_new_logs_are_ready_before_the_topic_is_applied(tmp_path):
    async def scenario() -> None:
        host = TopicTableHost(tmp_path, brokers=[NODE])
        controller = controller_on(host)
        await controller.create_topic(controller.plan_topic("wide", PREPARE_IN_THREAD, 1, {}))
        grown = controller.plan_partitions("wide", PREPARE_IN_THREAD * 2, None)
        await controller.update_topic(grown)
        assert host.applied == [("wide", True), ("wide", True)]
        assert host.logs_ready == [True, True]
        assert len(host.topics["wide"].partitions) == PREPARE_IN_THREAD * 2
        host.log_manager.shutdown()

    run(scenario())
