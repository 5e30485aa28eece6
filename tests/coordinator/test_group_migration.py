"""KIP-848 online migration in-process (real broker object, no network): a classic
group upgrades when a ConsumerGroupHeartbeat joins, its classic member is assigned by
the server through JoinGroup/SyncGroup/Heartbeat, and the group downgrades when the
consumer-protocol member leaves; with the policy disabled the upgrade is refused."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.coordinator.group.classic import ClassicGroup, GroupState
from moldau.coordinator.group.consumer import ConsumerGroup
from moldau.coordinator.group.records import decode_consumer_assignment, encode_consumer_assignment
from moldau.metastore.memory import MemoryMetaStore
from moldau.protocol.errors import ErrorCode

SUBSCRIPTION = b"\x00\x00" + struct.pack(">i", 1) + b"\x00\x01t" + struct.pack(">i", -1)  # v0, ["t"]


async def start(path: Path, **settings: str) -> Broker:
    config = BrokerConfig({"offsets.topic.num.partitions": "1", "group.initial.rebalance.delay.ms": "0", **settings})
    broker = Broker(config, path, MemoryMetaStore(), Endpoint("127.0.0.1", 9))
    await broker.start()
    await broker.group_coordinator.ensure_topic()
    await broker.controller.create_topic(broker.controller.plan_topic("t", 4, 1, {}))
    return broker


async def classic_join(b: Broker, member_id: str):
    return await b.group_coordinator.classic.join(
        "g", member_id, None, "classic-client", "/127.0.0.1", 10000, 10000, "consumer", [("range", SUBSCRIPTION)],
        False,
    )


def heartbeat(b: Broker, member_id: str, epoch: int):
    return b.group_coordinator.consumer.heartbeat(
        "g", member_id, epoch, None, None, 10000, ["t"] if epoch == 0 else None, None, None, None,
        "modern-client", "/127.0.0.1",
    )


async def classic_group_of_one(b: Broker) -> tuple[str, int]:
    joined = await classic_join(b, "")
    assert joined.error is ErrorCode.NONE and joined.leader == joined.member_id
    everything = encode_consumer_assignment(0, {"t": {0, 1, 2, 3}})
    synced = await b.group_coordinator.classic.sync(
        "g", joined.member_id, None, joined.generation_id, "consumer", "range", {joined.member_id: everything}
    )
    assert synced.error is ErrorCode.NONE
    return joined.member_id, joined.generation_id


def test_upgrade_serve_classic_member_and_downgrade(tmp_path):
    async def scenario():
        b = await start(tmp_path)
        coordinator = b.group_coordinator
        try:
            tid = b.topics["t"].topic_id
            a, generation = await classic_group_of_one(b)
            modern = heartbeat(b, "B", 0)
            assert modern.error is ErrorCode.NONE
            group = coordinator.groups["g"]
            assert isinstance(group, ConsumerGroup) and group.members[a].classic is not None
            assert group.members[a].epoch == generation and group.members[a].assigned == {tid: {0, 1, 2, 3}}
            assert modern.assignment == {}  # all still owned by the classic member
            # The classic member is told to rejoin, rejoins having revoked (eager), and
            # gets its share from the server through SyncGroup.
            assert coordinator.classic.heartbeat("g", a, None, generation) is ErrorCode.REBALANCE_IN_PROGRESS
            rejoined = await classic_join(b, a)
            assert rejoined.error is ErrorCode.NONE and rejoined.generation_id == group.group_epoch
            assert rejoined.leader == "" and rejoined.members == []
            synced = await coordinator.classic.sync("g", a, None, rejoined.generation_id, "consumer", "range", {})
            mine = decode_consumer_assignment(synced.assignment)["t"]
            assert synced.error is ErrorCode.NONE and len(mine) == 2
            assert coordinator.classic.heartbeat("g", a, None, rejoined.generation_id) is ErrorCode.NONE
            assert coordinator.classic.heartbeat("g", a, None, generation) is ErrorCode.ILLEGAL_GENERATION
            theirs = heartbeat(b, "B", modern.member_epoch)
            assert theirs.assignment == {tid: {0, 1, 2, 3} - mine}
            # The classic member commits with its generation (exact, as Kafka checks it).
            from moldau.coordinator.group import OffsetCommit

            ok = coordinator.commit_offsets("g", rejoined.generation_id, a, None, [OffsetCommit("t", 0, 5, -1, "")])
            assert ok == [ErrorCode.NONE]
            stale = coordinator.commit_offsets("g", generation, a, None, [OffsetCommit("t", 0, 6, -1, "")])
            assert stale == [ErrorCode.ILLEGAL_GENERATION]
            # The consumer-protocol member leaves: back to classic, rebalancing.
            assert heartbeat(b, "B", -1).error is ErrorCode.NONE
            back = coordinator.groups["g"]
            assert isinstance(back, ClassicGroup) and list(back.members) == [a]
            assert back.state is GroupState.PREPARING_REBALANCE and back.protocol_type == "consumer"
            assert coordinator.classic.heartbeat("g", a, None, back.generation_id) is ErrorCode.REBALANCE_IN_PROGRESS
        finally:
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_upgrade_refused_when_the_policy_is_disabled(tmp_path):
    async def scenario():
        b = await start(tmp_path, **{"group.consumer.migration.policy": "disabled"})
        try:
            await classic_group_of_one(b)
            assert heartbeat(b, "B", 0).error is ErrorCode.GROUP_ID_NOT_FOUND
            assert isinstance(b.group_coordinator.groups["g"], ClassicGroup)
        finally:
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_downgrade_when_the_consumer_member_is_fenced(tmp_path):
    """Kafka's validateOnlineDowngradeWithFencedMember: a consumer-protocol member that
    stops heartbeating is fenced, and the classic members left take the group back."""

    async def scenario():
        b = await start(tmp_path, **{"group.consumer.session.timeout.ms": "300"})
        coordinator = b.group_coordinator
        try:
            a, _ = await classic_group_of_one(b)
            assert heartbeat(b, "B", 0).error is ErrorCode.NONE
            assert isinstance(coordinator.groups["g"], ConsumerGroup)
            for _ in range(20):  # the classic member keeps its own (longer) session alive
                group = coordinator.groups["g"]
                if isinstance(group, ConsumerGroup):
                    coordinator.classic.heartbeat("g", a, None, group.members[a].epoch)
                await asyncio.sleep(0.05)
            back = coordinator.groups["g"]
            assert isinstance(back, ClassicGroup) and list(back.members) == [a]
        finally:
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 20))
