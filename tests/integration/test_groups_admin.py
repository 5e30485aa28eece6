"""Group administration through each client's admin API: list (with the state
filter), describe, list/alter/delete offsets, delete groups, and consumer lag
(committed offset against the end offset) -- confluent-kafka's AdminClient,
kafka-python's KafkaAdminClient and aiokafka's AIOKafkaAdminClient."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from .conftest import _dispose, _new_broker
from .kafka_helpers import Rec, confluent_produce, create_topic, unique_topic, wait_until
from .test_groups_clients import ck_consumer

pytestmark = pytest.mark.timeout(90)

SETTINGS = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 500,
    "offsets.topic.num.partitions": 3,
}


@pytest.fixture(scope="module")
def gbroker():
    b = _new_broker(SETTINGS, "groups-admin")
    yield b
    _dispose(b)


@pytest.fixture
def admin(gbroker):
    return AdminClient({"bootstrap.servers": gbroker.bootstrap})


def running_member(bootstrap: str, group: str, topic: str):
    c = ck_consumer(bootstrap, group, **{"client.id": "member-client"})
    c.subscribe([topic])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not c.assignment():
        c.poll(0.05)
    assert c.assignment()
    return c


def test_confluent_admin_groups_and_offsets(gbroker, admin):
    topic = unique_topic("adm-ck")
    create_topic(gbroker.bootstrap, topic, partitions=2)
    confluent_produce(gbroker.bootstrap, topic, [Rec(None, b"x")] * 10, partition=0)
    confluent_produce(gbroker.bootstrap, topic, [Rec(None, b"y")] * 4, partition=1)
    group = unique_topic("g-adm-ck")
    member = running_member(gbroker.bootstrap, group, topic)
    try:
        member.commit(offsets=[TopicPartition(topic, 0, 7, metadata="m7")], asynchronous=False)
        listed = admin.list_consumer_groups(request_timeout=10).result(timeout=20)
        by_id = {g.group_id: g for g in listed.valid}
        assert by_id[group].state == ConsumerGroupState.STABLE
        stable = admin.list_consumer_groups(
            request_timeout=10, states={ConsumerGroupState.STABLE}
        ).result(timeout=20)
        assert group in {g.group_id for g in stable.valid}
        empty = admin.list_consumer_groups(request_timeout=10, states={ConsumerGroupState.EMPTY}).result(timeout=20)
        assert group not in {g.group_id for g in empty.valid}
        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "range"
        assert len(desc.members) == 1
        m = desc.members[0]
        assert m.client_id == "member-client" and m.host.endswith("127.0.0.1")
        assert sorted(tp.partition for tp in m.assignment.topic_partitions) == [0, 1]
        # Deleting a group with members is refused.
        fut = admin.delete_consumer_groups([group], request_timeout=10)[group]
        with pytest.raises(Exception, match="NON_EMPTY_GROUP"):
            fut.result(timeout=20)
    finally:
        member.close()
    # Lag: committed offset against the end offset of each partition.
    got = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=20)
    committed = {tp.partition: (tp.offset, tp.metadata) for tp in got.topic_partitions}
    assert committed == {0: (7, "m7")}
    ends = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in (0, 1)})
    end = {tp.partition: f.result(timeout=20).offset for tp, f in ends.items()}
    assert {p: end[p] - committed.get(p, (0,))[0] for p in (0, 1)} == {0: 3, 1: 4}
    # Alter offsets of the now empty group, read them back, then delete it.
    alter = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 1)])]
    )[group].result(timeout=20)
    assert all(tp.error is None for tp in alter.topic_partitions)
    got = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])]
    )[group].result(timeout=20)
    assert sorted((tp.partition, tp.offset) for tp in got.topic_partitions) == [(0, 2), (1, 1)]
    desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
    assert desc.state == ConsumerGroupState.EMPTY and desc.members == []
    admin.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
    listed = admin.list_consumer_groups(request_timeout=10).result(timeout=20)
    assert group not in {g.group_id for g in listed.valid}
    got = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
    )[group].result(timeout=20)
    assert [tp.offset for tp in got.topic_partitions] == [-1001]  # librdkafka's "no offset"


def test_kafka_python_admin(gbroker):
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    topic = unique_topic("adm-kp")
    create_topic(gbroker.bootstrap, topic, partitions=2)
    group = unique_topic("g-adm-kp")
    admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
    try:
        member = running_member(gbroker.bootstrap, group, topic)
        try:
            groups = admin.list_groups()
            assert group in str(groups)
            described = admin.describe_groups([group])
            assert "Stable" in str(described) and "member-client" in str(described)
        finally:
            member.close()
        admin.alter_group_offsets(group, {KTP(topic, 0): OffsetAndMetadata(4, "kp", -1)})
        listed = admin.list_group_offsets({group: None})
        assert "4" in str(listed) and "kp" in str(listed)
        admin.delete_group_offsets(group, [KTP(topic, 0)])
        listed = admin.list_group_offsets({group: None})
        assert "'kp'" not in str(listed)
        result = admin.delete_groups([group])
        assert "Error" not in str(result) or "NoError" in str(result)
        assert group not in str(admin.list_groups())
    finally:
        admin.close()


def test_aiokafka_admin(gbroker):
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition as AioTP

    topic = unique_topic("adm-aio")
    create_topic(gbroker.bootstrap, topic, partitions=2)
    group = unique_topic("g-adm-aio")
    member = running_member(gbroker.bootstrap, group, topic)

    async def run() -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import OffsetAndMetadata

        admin = AIOKafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
        await admin.start()
        try:
            listed = await admin.list_consumer_groups()
            assert (group, "consumer") in [(g[0], g[1]) for g in listed]
            described = await admin.describe_consumer_groups([group])
            g = described[0].groups[0]
            assert g[1] == group and g[2] == "Stable"
            member.close()
            # The group is empty now: a standalone consumer may commit for it.
            c = AIOKafkaConsumer(bootstrap_servers=gbroker.bootstrap, group_id=group, enable_auto_commit=False)
            await c.start()
            try:
                c.assign([AioTP(topic, 1)])
                await c.commit({AioTP(topic, 1): OffsetAndMetadata(9, "aio")})
            finally:
                await c.stop()
            offsets = await admin.list_consumer_group_offsets(group)
            assert offsets[AioTP(topic, 1)].offset == 9
            assert offsets[AioTP(topic, 1)].metadata == "aio"
            described = await admin.describe_consumer_groups([group])
            assert described[0].groups[0][2] == "Empty"
        finally:
            await admin.close()

    try:
        asyncio.run(run())
    finally:
        member.close()


def test_lag_while_consuming(gbroker, admin):
    """A member commits as it goes; lag read through the admin API falls to zero."""
    topic = unique_topic("lag")
    create_topic(gbroker.bootstrap, topic, partitions=1)
    confluent_produce(gbroker.bootstrap, topic, [Rec(None, b"%d" % i) for i in range(25)])
    group = unique_topic("g-lag")
    c = ck_consumer(gbroker.bootstrap, group)
    c.subscribe([topic])
    try:
        seen = 0

        def progress() -> bool:
            nonlocal seen
            m = c.poll(0.1)
            if m is not None and not m.error():
                seen += 1
                c.commit(message=m, asynchronous=False)
            return seen >= 25

        wait_until(progress, timeout=20, interval=0)
        got = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=20)
        committed = {tp.partition: tp.offset for tp in got.topic_partitions}
        end = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.latest()})
        end_offset = next(iter(end.values())).result(timeout=20).offset
        assert end_offset - committed[0] == 0
    finally:
        c.close()
