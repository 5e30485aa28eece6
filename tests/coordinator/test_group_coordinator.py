"""The group coordinator in-process, on a real broker object (no sockets): classic
joins and syncs, protocol selection, session expiry, the initial rebalance delay,
persistence and reload from ``__consumer_offsets``, and offset expiration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.coordinator.group import OFFSETS_TOPIC, OffsetCommit
from moldau.coordinator.group.classic import GroupState
from moldau.metastore.local import LocalMetaStore
from moldau.protocol.errors import ErrorCode

BASE = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "100",
    "offsets.topic.num.partitions": "4",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def start_broker(path: Path, clock: Clock | None = None, **settings: str) -> Broker:
    path.mkdir(exist_ok=True)
    broker = Broker(BrokerConfig({**BASE, **settings}), path, LocalMetaStore(path), Endpoint("127.0.0.1", 9))
    if clock is not None:
        broker.group_coordinator._clock = clock
    await broker.start()
    return broker


async def loaded(broker: Broker) -> None:
    for _ in range(200):
        if not broker.group_coordinator._loading:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("coordinator did not load")


def join(broker: Broker, group: str, member: str = "", protocols=None, session: int = 1000, rebalance: int = 1000,
         instance: str | None = None, require_known: bool = False):
    return broker.group_coordinator.classic.join(
        group, member, instance, "client", "/127.0.0.1", session, rebalance, "consumer",
        protocols or [("range", b"R")], require_known_member_id=require_known,
    )


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_two_members_vote_and_sync(tmp_path):
    async def scenario():
        b = await start_broker(tmp_path / "d")
        try:
            await b.group_coordinator.ensure_topic()
            first = await join(b, "g", protocols=[("range", b"r1"), ("roundrobin", b"o1")])
            assert first.generation_id == 1 and first.leader == first.member_id
            # A second member prefers roundrobin; both support both: the vote is a tie and
            # the earlier member's choice wins. The first member must rejoin.
            second_task = asyncio.ensure_future(join(b, "g", protocols=[("roundrobin", b"o2"), ("range", b"r2")]))
            await asyncio.sleep(0.05)
            group = b.group_coordinator.groups["g"]
            assert group.state is GroupState.PREPARING_REBALANCE
            again = await join(b, "g", first.member_id, protocols=[("range", b"r1"), ("roundrobin", b"o1")])
            second = await second_task
            assert again.generation_id == second.generation_id == 2
            assert again.protocol_name == "range"
            assert sorted(m[2] for m in again.members) == [b"r1", b"r2"]
            assert second.members == []
            sync_other = asyncio.ensure_future(
                b.group_coordinator.classic.sync("g", second.member_id, None, 2, None, None, {})
            )
            await asyncio.sleep(0.01)
            assert not sync_other.done()  # waits for the leader
            leader_sync = await b.group_coordinator.classic.sync(
                "g", first.member_id, None, 2, "consumer", "range", {first.member_id: b"A", second.member_id: b"B"}
            )
            assert leader_sync.assignment == b"A"
            assert (await sync_other).assignment == b"B"
            assert group.state is GroupState.STABLE
            bad = await b.group_coordinator.classic.sync("g", first.member_id, None, 2, "consumer", "other", {})
            assert bad.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        finally:
            await b.stop()

    run(scenario())


def test_session_expiry_triggers_rebalance(tmp_path):
    async def scenario():
        b = await start_broker(tmp_path / "d")
        try:
            await b.group_coordinator.ensure_topic()
            r = await join(b, "g", session=150)
            await b.group_coordinator.classic.sync("g", r.member_id, None, 1, None, None, {r.member_id: b"x"})
            group = b.group_coordinator.groups["g"]
            for _ in range(4):  # heartbeats keep it alive past its session timeout
                await asyncio.sleep(0.08)
                assert b.group_coordinator.classic.heartbeat("g", r.member_id, None, 1) is ErrorCode.NONE
            await asyncio.sleep(0.3)
            assert group.state is GroupState.EMPTY and not group.members
            assert group.generation_id == 2
            assert b.group_coordinator.classic.heartbeat("g", r.member_id, None, 1) is ErrorCode.UNKNOWN_MEMBER_ID
        finally:
            await b.stop()

    run(scenario())


def test_initial_rebalance_delay_gathers_members(tmp_path):
    async def scenario():
        b = await start_broker(tmp_path / "d", **{"group.initial.rebalance.delay.ms": "150"})
        try:
            await b.group_coordinator.ensure_topic()
            loop = asyncio.get_running_loop()
            started = loop.time()
            first = asyncio.ensure_future(join(b, "g", rebalance=2000))
            await asyncio.sleep(0.1)
            second = asyncio.ensure_future(join(b, "g", rebalance=2000))
            results = await asyncio.gather(first, second)
            took = loop.time() - started
            # One generation for both; the late joiner kept the group waiting until it had
            # been quiet for the whole delay: 0.1 s + 0.15 s.
            assert {r.generation_id for r in results} == {1}
            assert 0.24 <= took < 1.0
        finally:
            await b.stop()

    run(scenario())


def test_members_starting_together_form_after_one_delay(tmp_path):
    async def scenario():
        b = await start_broker(tmp_path / "d", **{"group.initial.rebalance.delay.ms": "300"})
        try:
            await b.group_coordinator.ensure_topic()
            loop = asyncio.get_running_loop()
            started = loop.time()
            joins = [asyncio.ensure_future(join(b, "g", rebalance=5000)) for _ in range(3)]
            results = await asyncio.gather(*joins)
            took = loop.time() - started
            assert {r.generation_id for r in results} == {1}
            assert len({r.member_id for r in results}) == 3
            # Kafka would re-arm the delay once (about 0.6 s); one quiet delay is enough
            assert 0.29 <= took < 0.5
        finally:
            await b.stop()

    run(scenario())


def test_offsets_and_group_survive_reload(tmp_path):
    async def first_life():
        b = await start_broker(tmp_path / "d")
        try:
            c = b.group_coordinator
            await c.ensure_topic()
            errors = c.commit_offsets("solo", -1, "", None, [OffsetCommit("t", 0, 42, 7, "meta"), OffsetCommit("t", 1, 1, -1, None)])
            assert errors == [ErrorCode.NONE, ErrorCode.NONE]
            r = await join(b, "live", session=5000)
            await c.classic.sync("live", r.member_id, None, 1, None, None, {r.member_id: b"assigned"})
            c.commit_offsets("live", 1, r.member_id, None, [OffsetCommit("t", 0, 9, -1, "")])
            c.commit_offsets("gone", -1, "", None, [OffsetCommit("t", 0, 1, -1, "")])
            assert c.delete_group("gone") is ErrorCode.NONE
            assert c.delete_offsets("solo", [("t", 1)]) == [ErrorCode.NONE]
            return r.member_id
        finally:
            await b.stop()

    member_id = run(first_life())

    async def second_life():
        b = await start_broker(tmp_path / "d")
        try:
            c = b.group_coordinator
            await loaded(b)
            assert c.fetch_offsets("solo", None) == [("t", [(0, c.offsets["solo"][("t", 0)])])]
            v = c.offsets["solo"][("t", 0)]
            assert (v.offset, v.leader_epoch, v.metadata) == (42, 7, "meta")
            assert "gone" not in c.groups and "gone" not in c.offsets
            live = c.groups["live"]
            assert live.state is GroupState.STABLE and live.generation_id == 1
            assert live.members[member_id].assignment == b"assigned"
            # The member can carry on with its generation after the broker restart.
            assert c.classic.heartbeat("live", member_id, None, 1) is ErrorCode.NONE
        finally:
            await b.stop()

    run(second_life())


def test_load_in_progress_answers(tmp_path):
    async def scenario():
        b = await start_broker(tmp_path / "d")
        try:
            await b.group_coordinator.ensure_topic()
            c = b.group_coordinator
            c._loading.add(c.partition_of("g"))
            with pytest.raises(Exception) as info:
                c.check_coordinator("g")
            assert info.value.code is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        finally:
            await b.stop()

    run(scenario())


def test_offsets_expire_for_empty_groups_only(tmp_path):
    clock = Clock()

    async def scenario():
        b = await start_broker(tmp_path / "d", clock, **{"offsets.retention.minutes": "1"})
        try:
            c = b.group_coordinator
            await c.ensure_topic()
            c.commit_offsets("standalone", -1, "", None, [OffsetCommit("t", 0, 5, -1, "")])
            subscription = b"\x00\x00\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff"  # topics ["t"]
            r = await join(b, "active", session=60000, protocols=[("range", subscription)])
            await c.classic.sync("active", r.member_id, None, 1, None, None, {})
            c.commit_offsets("active", 1, r.member_id, None, [OffsetCommit("t", 0, 5, -1, "")])
            clock.now += 30
            assert c.expire_offsets() == 0
            clock.now += 31
            # The standalone group's offsets expire and the group goes; a live consumer
            # group keeps the offsets of the topics it subscribes to.
            assert c.expire_offsets() == 1
            assert "standalone" not in c.groups and "standalone" not in c.offsets
            assert ("t", 0) in c.offsets["active"]
        finally:
            await b.stop()

    run(scenario())

    async def reloaded():
        b = await start_broker(tmp_path / "d", clock)
        try:
            await loaded(b)
            assert "standalone" not in b.group_coordinator.offsets
            assert OFFSETS_TOPIC in b.topics
        finally:
            await b.stop()

    run(reloaded())


def test_txn_offset_commit_without_member_is_accepted_from_a_stable_group(tmp_path):
    """TxnOffsetCommit below v3 names no member nor generation (aiokafka, faust): Kafka
    accepts it whatever the group's state; a plain OffsetCommit without them is not."""
    async def scenario():
        b = await start_broker(tmp_path / "d")
        try:
            await b.group_coordinator.ensure_topic()
            r = await join(b, "g")
            await b.group_coordinator.classic.sync("g", r.member_id, None, 1, None, None, {r.member_id: b"x"})
            assert b.group_coordinator.groups["g"].state is GroupState.STABLE
            commit = [OffsetCommit("t", 0, 5, -1, "")]
            assert b.group_coordinator.txn_commit_offsets("g", 1000, 0, -1, "", None, commit) == [ErrorCode.NONE]
            assert b.group_coordinator.txn_commit_offsets("g", 1000, 0, -1, "nobody", None, commit) == [
                ErrorCode.UNKNOWN_MEMBER_ID]
            assert b.group_coordinator.commit_offsets("g", -1, "", None, commit) != [ErrorCode.NONE]
        finally:
            await b.stop()

    run(scenario())
