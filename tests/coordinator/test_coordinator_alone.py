"""The group coordinator on its own, without a broker: run against a small, real
implementation of the seams it declares in :mod:`moldau.ports` (GroupCoordinatorHost,
TopicCreator, LeadershipListener) -- real Partitions on real logs in a temporary
directory, one node, no metadata store, no sockets. It creates its topic through the
seam, persists commits in the partition and waits for the high watermark, follows
the leadership of its partition away and back, and reloads its state from the log
in a second life."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from moldau.config.broker import BrokerConfig
from moldau.coordinator.group import OFFSETS_TOPIC, GroupCoordinator, OffsetCommit
from moldau.metastore.store import PartitionState, TopicRecord
from moldau.ports import GroupCoordinatorHost, LeadershipListener
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.replication.partition import Partition
from moldau.storage.config import LogConfig
from moldau.storage.log_manager import LogManager

NODE = 0
CONFIG = {"offsets.topic.num.partitions": "3", "group.initial.rebalance.delay.ms": "0"}


class OffsetsHost:
    """What GroupCoordinatorHost asks for and nothing more of a broker: configs, a
    topic table, and the partitions this node holds, as real Partitions on real logs.
    It is its own TopicCreator (the controller's part, for one node) and applies a
    topic record as the broker does, telling its listeners of leadership changes."""

    def __init__(self, path: Path) -> None:
        self.config = BrokerConfig(CONFIG)
        self.topics: dict[str, TopicRecord] = {}
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.listeners: list[LeadershipListener] = []
        self.logs = LogManager(path, LogConfig.from_properties(self.config.effective_topic_config({})))
        self.logs.load()

    # GroupCoordinatorHost -------------------------------------------------------------

    @property
    def controller(self) -> OffsetsHost:
        return self

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get((topic, index))

    # TopicCreator ---------------------------------------------------------------------

    def live_brokers(self) -> list[int]:
        return [NODE]

    def plan_topic(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: dict[str, str | None],
        assignments: dict[int, list[int]] | None = None,
        pending: int = 0,
    ) -> TopicRecord:
        assert replication_factor == 1  # min(offsets.topic.replication.factor, live brokers)
        states = {i: PartitionState(leader=NODE, replicas=[NODE], isr=[NODE]) for i in range(num_partitions)}
        return TopicRecord(name, uuid.uuid4(), states, {k: v for k, v in configs.items() if v is not None})

    async def create_topic(self, topic: TopicRecord) -> TopicRecord:
        self.apply(topic)
        return topic

    # what the broker does with metadata -----------------------------------------------

    def apply(self, topic: TopicRecord) -> None:
        self.topics[topic.name] = topic
        for index, state in topic.partitions.items():
            partition = self.partitions.get((topic.name, index))
            if partition is None:
                log = self.logs.get_log(topic.name, index) or self.logs.create_log(topic.name, index)
                partition = Partition(
                    topic.name, index, topic.topic_id, log, broker_id=NODE, leader=state.leader,
                    leader_epoch=state.leader_epoch, replicas=list(state.replicas), isr=list(state.isr),
                )
                self.partitions[(topic.name, index)] = partition
            role = partition.apply_state(
                state.leader, state.leader_epoch, state.replicas, state.isr, state.partition_epoch
            )
            if role is not None:
                for listener in self.listeners:
                    listener.leadership_changed(topic.name, index, role == "leader")

    def elect(self, index: int, leader: int) -> None:
        """A new leader for one partition of ``__consumer_offsets``, in a new epoch."""
        topic = self.topics[OFFSETS_TOPIC]
        old = topic.partitions[index]
        topic.partitions[index] = PartitionState(
            leader=leader, leader_epoch=old.leader_epoch + 1, replicas=[NODE, 1], isr=[leader]
        )
        self.apply(topic)


def coordinator_on(host: OffsetsHost) -> GroupCoordinator:
    seam: GroupCoordinatorHost = host  # what a type checker verifies, checked at run time too
    assert isinstance(seam, GroupCoordinatorHost)
    coordinator = GroupCoordinator(seam)
    host.listeners.append(coordinator)
    return coordinator


async def loaded(coordinator: GroupCoordinator) -> None:
    for _ in range(500):
        if not coordinator._loading:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the coordinator did not load its partitions")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def commit(coordinator: GroupCoordinator, group: str, offset: int) -> list[ErrorCode]:
    return coordinator.commit_offsets(group, -1, "", None, [OffsetCommit("orders", 0, offset, 3, "m")])


def committed(coordinator: GroupCoordinator, group: str) -> int | None:
    [(_, [(_, value)])] = coordinator.fetch_offsets(group, [("orders", [0])])
    return None if value is None else value.offset


def test_commits_persist_through_the_seam_and_reload_in_a_second_life(tmp_path):
    async def first_life() -> TopicRecord:
        host = OffsetsHost(tmp_path)
        coordinator = coordinator_on(host)
        await coordinator.start()
        try:
            await coordinator.ready("g")  # creates __consumer_offsets through TopicCreator
            assert set(host.topics) == {OFFSETS_TOPIC} and len(host.partitions) == 3
            assert host.topics[OFFSETS_TOPIC].configs["cleanup.policy"] == "compact"
            assert commit(coordinator, "g", 42) == [ErrorCode.NONE]
            assert await coordinator.replicated("g") is ErrorCode.NONE
            written = host.partitions[(OFFSETS_TOPIC, coordinator.partition_of("g"))]
            assert written.log.log_end_offset == 1 and written.high_watermark == 1
            return host.topics[OFFSETS_TOPIC]
        finally:
            await coordinator.stop()
            host.logs.shutdown()

    topic = run(first_life())

    async def second_life() -> None:
        host = OffsetsHost(tmp_path)
        coordinator = coordinator_on(host)
        host.apply(topic)  # the broker applies its metadata before it starts coordinators
        await coordinator.start()
        try:
            await loaded(coordinator)
            assert committed(coordinator, "g") == 42
        finally:
            await coordinator.stop()
            host.logs.shutdown()

    run(second_life())


def test_the_coordinator_follows_the_leadership_of_its_partition(tmp_path):
    async def scenario() -> None:
        host = OffsetsHost(tmp_path)
        coordinator = coordinator_on(host)
        await coordinator.start()
        try:
            await coordinator.ready("g")
            assert commit(coordinator, "g", 7) == [ErrorCode.NONE]
            index = coordinator.partition_of("g")

            host.elect(index, leader=1)  # another broker leads: resign
            assert committed(coordinator, "g") is None
            try:
                coordinator.check_coordinator("g")
            except KafkaError as exc:
                assert exc.code is ErrorCode.NOT_COORDINATOR
            else:
                raise AssertionError("a resigned coordinator still serves the group")

            host.elect(index, leader=NODE)  # back here: load the partition again
            await loaded(coordinator)
            coordinator.check_coordinator("g")
            assert committed(coordinator, "g") == 7
        finally:
            await coordinator.stop()
            host.logs.shutdown()

    run(scenario())
