"""KIP-848: the server-side assignors (properties) and the reconciliation protocol
(in-process heartbeats on a real broker object): no partition is ever owned by two
members, revocation comes before reassignment, epochs and errors as Kafka's."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.coordinator.group.assignors import MemberSpec, TopicInfo, range_assign, uniform_assign
from moldau.metastore.memory import MemoryMetaStore
from moldau.protocol.errors import ErrorCode

T1, T2 = uuid.UUID(int=1), uuid.UUID(int=2)


def flat(assignment):
    return {(t, p) for t, ps in assignment.items() for p in ps}


@st.composite
def groups(draw):
    topics = {T1: TopicInfo(T1, "a", draw(st.integers(1, 12))), T2: TopicInfo(T2, "b", draw(st.integers(1, 12)))}
    count = draw(st.integers(1, 6))
    homogeneous = draw(st.booleans())
    members = []
    for i in range(count):
        subs = frozenset([T1, T2]) if homogeneous else frozenset(draw(st.sets(st.sampled_from([T1, T2]), min_size=1)))
        members.append(MemberSpec(f"m{i}", subs, {}))
    return topics, members


@given(groups())
@settings(max_examples=200, deadline=None)
def test_assignors_are_complete_and_exclusive(case):
    topics, members = case
    for assign in (uniform_assign, range_assign):
        result = assign(members, topics)
        seen = [tp for a in result.values() for tp in flat(a)]
        assert len(seen) == len(set(seen))  # exclusive
        wanted = {(t, p) for t in topics for p in range(topics[t].partitions) if any(t in m.topics for m in members)}
        assert set(seen) == wanted  # complete
        for m in members:
            assert all(t in m.topics for t, _ in flat(result[m.member_id]))  # only what it subscribes to


@given(groups())
@settings(max_examples=200, deadline=None)
def test_uniform_is_balanced_for_same_subscriptions(case):
    topics, members = case
    members = [MemberSpec(m.member_id, frozenset([T1, T2]), {}) for m in members]
    counts = [len(flat(a)) for a in uniform_assign(members, topics).values()]
    assert max(counts) - min(counts) <= 1


@given(st.integers(2, 30), st.integers(1, 6))
def test_uniform_is_sticky_when_a_member_joins(partitions, count):
    topics = {T1: TopicInfo(T1, "a", partitions)}
    members = [MemberSpec(f"m{i}", frozenset([T1]), {}) for i in range(count)]
    before = uniform_assign(members, topics)
    grown = [MemberSpec(m.member_id, m.topics, {t: frozenset(p) for t, p in before[m.member_id].items()}) for m in members]
    grown.append(MemberSpec("new", frozenset([T1]), {}))
    after = uniform_assign(grown, topics)
    moved = sum(len(flat(before[m.member_id]) - flat(after[m.member_id])) for m in members)
    # Only what the newcomer needs moves.
    assert moved == len(flat(after["new"]))


def test_range_gives_contiguous_blocks():
    topics = {T1: TopicInfo(T1, "a", 7)}
    members = [MemberSpec(f"m{i}", frozenset([T1]), {}) for i in range(3)]
    result = range_assign(members, topics)
    assert [sorted(result[f"m{i}"][T1]) for i in range(3)] == [[0, 1, 2], [3, 4], [5, 6]]


# -- reconciliation --------------------------------------------------------------------


async def start(path: Path) -> Broker:
    config = BrokerConfig({"offsets.topic.num.partitions": "2", "group.consumer.session.timeout.ms": "300"})
    broker = Broker(config, path, MemoryMetaStore(), Endpoint("127.0.0.1", 9))
    await broker.start()
    await broker.group_coordinator.ensure_topic()
    plan = broker.controller.plan_topic("t", 6, 1, {})
    await broker.controller.create_topic(plan)
    return broker


def hb(broker, member_id, epoch, owned=None, topics=("t",), instance=None, assignor=None):
    return broker.group_coordinator.consumer.heartbeat(
        "g", member_id, epoch, instance, None, 1000, list(topics) if epoch == 0 else None, None, assignor, owned,
        "client", "/127.0.0.1",
    )


def test_reconciliation_revokes_before_reassigning(tmp_path):
    async def scenario():
        b = await start(tmp_path)
        try:
            tid = b.topics["t"].topic_id
            a = hb(b, "A", 0)
            assert a.error is ErrorCode.NONE and a.member_epoch >= 1
            assert a.assignment == {tid: set(range(6))}
            b_join = hb(b, "B", 0)
            # B may not get anything A still owns.
            assert b_join.assignment == {}
            a2 = hb(b, "A", a.member_epoch, owned={tid: set(range(6))})
            kept = a2.assignment[tid]
            assert len(kept) == 3 and a2.member_epoch == a.member_epoch  # revoke first, same epoch
            still = hb(b, "B", b_join.member_epoch, owned={})
            assert not (still.assignment or {}).get(tid)  # A has not confirmed yet
            a3 = hb(b, "A", a2.member_epoch, owned={tid: set(kept)})
            assert a3.member_epoch > a.member_epoch
            b2 = hb(b, "B", still.member_epoch, owned={})
            assert b2.assignment == {tid: set(range(6)) - kept}
            group = b.group_coordinator.groups["g"]
            assert group.state_name == "Stable" or group.state_name == "Reconciling"
            hb(b, "B", b2.member_epoch, owned=b2.assignment)
            assert group.state_name == "Stable"
            # Errors: a stale epoch is fenced, an unknown member is told so.
            assert hb(b, "A", 99, owned={}).error is ErrorCode.FENCED_MEMBER_EPOCH
            assert hb(b, "Z", 3).error is ErrorCode.UNKNOWN_MEMBER_ID
            assert hb(b, "C", 0, assignor="sticky").error is ErrorCode.UNSUPPORTED_ASSIGNOR
            # A leaves: B gets everything on its next heartbeat.
            assert hb(b, "A", -1).error is ErrorCode.NONE
            b3 = hb(b, "B", b2.member_epoch, owned=b2.assignment)
            b4 = hb(b, "B", b3.member_epoch, owned=b3.assignment or b2.assignment)
            final = b4.assignment or b3.assignment
            assert final == {tid: set(range(6))}
        finally:
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_session_timeout_and_static_members(tmp_path):
    async def scenario():
        b = await start(tmp_path)
        try:
            tid = b.topics["t"].topic_id
            s = hb(b, "S1", 0, instance="static-1")
            assert s.assignment == {tid: set(range(6))}
            # Another process with the same instance id while the first is alive.
            assert hb(b, "S2", 0, instance="static-1").error is ErrorCode.UNRELEASED_INSTANCE_ID
            # Temporary leave (-2) keeps the place; the replacement takes it over unchanged.
            assert hb(b, "S1", -2, instance="static-1").error is ErrorCode.NONE
            back = hb(b, "S2", 0, instance="static-1")
            assert back.error is ErrorCode.NONE and back.assignment == {tid: set(range(6))}
            assert back.member_epoch == s.member_epoch
            # No heartbeats: fenced after the group's session timeout.
            await asyncio.sleep(0.5)
            assert b.group_coordinator.groups["g"].members == {}
            assert hb(b, "S2", back.member_epoch, owned={}).error is ErrorCode.UNKNOWN_MEMBER_ID
        finally:
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_kip848_state_survives_a_restart(tmp_path):
    from moldau.metastore.local import LocalMetaStore

    config = {"offsets.topic.num.partitions": "2", "group.consumer.session.timeout.ms": "30000"}

    async def first():
        b = Broker(BrokerConfig(config), tmp_path, LocalMetaStore(tmp_path), Endpoint("127.0.0.1", 9))
        await b.start()
        try:
            await b.group_coordinator.ensure_topic()
            await b.controller.create_topic(b.controller.plan_topic("t", 4, 1, {}))
            tid = b.topics["t"].topic_id
            a = hb(b, "A", 0, instance="ia")
            c = hb(b, "C", 0)
            a2 = hb(b, "A", a.member_epoch, owned=a.assignment)
            a3 = hb(b, "A", a2.member_epoch, owned=a2.assignment)
            c2 = hb(b, "C", c.member_epoch, owned={})
            group = b.group_coordinator.groups["g"]
            assert group.state_name == "Reconciling" or group.state_name == "Stable"
            hb(b, "C", c2.member_epoch, owned=c2.assignment)
            return tid, {m.member_id: (m.epoch, {t: set(p) for t, p in m.assigned.items()})
                         for m in group.members.values()}, group.group_epoch, a3
        finally:
            await b.stop()

    tid, members, epoch, a3 = asyncio.run(first())
    assert sum(len(p.get(tid, ())) for _, p in members.values()) == 4

    async def second():
        b = Broker(BrokerConfig(config), tmp_path, LocalMetaStore(tmp_path), Endpoint("127.0.0.1", 9))
        await b.start()
        try:
            for _ in range(200):
                if not b.group_coordinator._loading:
                    break
                await asyncio.sleep(0.01)
            group = b.group_coordinator.groups["g"]
            assert group.group_epoch == epoch
            assert {m.member_id: (m.epoch, m.assigned) for m in group.members.values()} == members
            assert group.static_members == {"ia": "A"}
            # The members carry on with their epochs: no UNKNOWN_MEMBER_ID, no new epoch.
            again = hb(b, "A", members["A"][0], owned=members["A"][1])
            assert again.error is ErrorCode.NONE and again.member_epoch == members["A"][0]
            assert group.group_epoch == epoch
            # A leaves for good: its records are tombstoned and stay gone after a reload.
            assert hb(b, "A", -1).error is ErrorCode.NONE
        finally:
            await b.stop()

    asyncio.run(second())

    async def third():
        b = Broker(BrokerConfig(config), tmp_path, LocalMetaStore(tmp_path), Endpoint("127.0.0.1", 9))
        await b.start()
        try:
            for _ in range(200):
                if not b.group_coordinator._loading:
                    break
                await asyncio.sleep(0.01)
            group = b.group_coordinator.groups["g"]
            assert set(group.members) == {"C"} and group.static_members == {}
        finally:
            await b.stop()

    asyncio.run(third())


def test_member_that_does_not_revoke_is_fenced_after_its_rebalance_timeout(tmp_path):
    async def scenario():
        b = await start(tmp_path)
        try:
            tid = b.topics["t"].topic_id
            consumer = b.group_coordinator.consumer

            def beat(member_id, epoch, owned=None, timeout=1000):
                return consumer.heartbeat("g", member_id, epoch, None, None, timeout,
                                          ["t"] if epoch == 0 else None, None, None, owned, "c", "/h")

            a = beat("A", 0, timeout=150)
            beat("B", 0)
            a2 = beat("A", a.member_epoch, owned={tid: set(range(6))}, timeout=150)
            assert len(a2.assignment[tid]) == 3  # asked to give three up
            group = b.group_coordinator.groups["g"]
            for _ in range(3):  # it keeps heartbeating but never lets go
                await asyncio.sleep(0.06)
                beat("A", a2.member_epoch, owned={tid: set(range(6))}, timeout=150)
            await asyncio.sleep(0.1)
            assert "A" not in group.members
        finally:
            await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 20))
