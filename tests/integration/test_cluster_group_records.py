"""SyncGroup answers once the group record is in the ISR of ``__consumer_offsets``
(issue 9; docs/08-cluster.md, "Group metadata writes").

Three brokers, ``__consumer_offsets`` with one partition and replication factor 3. With
the coordinator's two followers frozen (SIGSTOP) the partition's high watermark cannot
pass the group record, so the leader's SyncGroup is answered COORDINATOR_NOT_AVAILABLE
after ``offsets.commit.timeout.ms`` (Kafka's mapping of a timed-out group write), not
NONE with an assignment nothing but the coordinator holds; the group rebalances. A
static member's restart (a new member id for its old assignment) is answered the same,
and its old member id stays valid. Once
the followers run again, a JoinGroup and SyncGroup of the same member succeed, and a
kafka-python consumer of the group consumes through the coordinator.

Cost: about 10-15 s on the 2-core machine (one cluster of three brokers, one freeze).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from confluent_kafka.admin import NewTopic
from kafka import KafkaConsumer

from moldau.protocol.messages import ALL_APIS
from moldau.replication.client import BrokerClient, codec_for

from .etcd_process import ClusterBroker
from .kafka_helpers import Rec, admin_client, confluent_produce, unique_topic, wait_until
from .test_cluster_operations import _partitions, _start

NONE = 0
COORDINATOR_NOT_AVAILABLE = 15
REBALANCE_IN_PROGRESS = 27
SETTINGS = {
    "offsets.topic.replication.factor": 3,
    "offsets.topic.num.partitions": 1,
    "offsets.commit.timeout.ms": 800,
    "group.initial.rebalance.delay.ms": 0,
}


def _join_and_sync(broker: ClusterBroker, group: str, member_id: str = "") -> tuple[int, int, str, float]:
    """JoinGroup v3 then SyncGroup v3 as the only member (and so the leader):
    (join error, sync error, member id, seconds the SyncGroup took)."""
    join_api, sync_api = ALL_APIS[11], ALL_APIS[14]
    join, sync = codec_for(join_api), codec_for(sync_api)

    async def run() -> tuple[int, int, str, float]:
        client = BrokerClient(broker.host, broker.port, "it-group")
        try:
            joined = await client.request(join_api, 3, join.Request(
                group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id=member_id,
                protocol_type="consumer",
                protocols=[join.Request.of("protocols")(name="range", metadata=b"\x00\x01")],
            ), timeout=20)
            if joined.error_code:
                return joined.error_code, -1, joined.member_id, 0.0
            started = time.monotonic()
            synced = await client.request(sync_api, 3, sync.Request(
                group_id=group, generation_id=joined.generation_id, member_id=joined.member_id,
                assignments=[sync.Request.of("assignments")(member_id=joined.member_id, assignment=b"mine")],
            ), timeout=20)
            took = time.monotonic() - started
            if synced.error_code == NONE:
                assert bytes(synced.assignment) == b"mine"
            return joined.error_code, synced.error_code, joined.member_id, took
        finally:
            await client.close()

    return asyncio.run(run())


def _static(broker: ClusterBroker, group: str, member_id: str = "", sync: bool = True) -> tuple[int, str, float]:
    """A static member (instance "i1") joins (JoinGroup v5) and, if asked, syncs:
    (first error, member id, seconds the JoinGroup took)."""
    join_api, sync_api = ALL_APIS[11], ALL_APIS[14]
    join, syncc = codec_for(join_api), codec_for(sync_api)

    async def run() -> tuple[int, str, float]:
        client = BrokerClient(broker.host, broker.port, "it-static")
        try:
            started = time.monotonic()
            joined = await client.request(join_api, 5, join.Request(
                group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id=member_id,
                group_instance_id="i1", protocol_type="consumer",
                protocols=[join.Request.of("protocols")(name="range", metadata=b"\x00\x01")],
            ), timeout=20)
            took = time.monotonic() - started
            if joined.error_code or not sync:
                return joined.error_code, joined.member_id, took
            synced = await client.request(sync_api, 3, syncc.Request(
                group_id=group, generation_id=joined.generation_id, member_id=joined.member_id,
                group_instance_id="i1",
                assignments=[syncc.Request.of("assignments")(member_id=joined.member_id, assignment=b"mine")],
            ), timeout=20)
            return synced.error_code, joined.member_id, took
        finally:
            await client.close()

    return asyncio.run(run())


def _heartbeat(broker: ClusterBroker, group: str, member_id: str, generation: int = 1) -> int:
    api = ALL_APIS[12]
    codec = codec_for(api)

    async def run() -> int:
        client = BrokerClient(broker.host, broker.port, "it-static")
        try:
            answer = await client.request(api, 3, codec.Request(
                group_id=group, generation_id=generation, member_id=member_id, group_instance_id="i1",
            ), timeout=20)
            return answer.error_code
        finally:
            await client.close()

    return asyncio.run(run())


def test_sync_group_waits_for_the_group_record_in_the_isr(cluster) -> None:
    brokers = _start(cluster, **SETTINGS)
    group = unique_topic("grp")
    admin = admin_client(brokers[1].bootstrap)
    # __consumer_offsets (auto-created by naming it) with all three in its ISR
    wait_until(lambda: (lambda p: p and p[0][2] == [1, 2, 3])(_partitions(brokers[1].bootstrap, "__consumer_offsets")),
               timeout=20, message="__consumer_offsets fully replicated")
    coordinator = _partitions(brokers[1].bootstrap, "__consumer_offsets")[0][0]
    followers = [i for i in brokers if i != coordinator]
    warm_up = unique_topic("warm-up")
    wait_until(lambda: _join_and_sync(brokers[coordinator], warm_up)[:2] == (NONE, NONE), timeout=20,
               interval=0.3, message="the coordinator serves groups")

    static = unique_topic("grp-static")
    assert _static(brokers[coordinator], static)[0] == NONE
    old_member = _static(brokers[coordinator], static)[1]  # rejoined with a new id, no rebalance

    for i in followers:
        os.kill(brokers[i].pid, signal.SIGSTOP)
    try:
        join_error, sync_error, member_id, took = _join_and_sync(brokers[coordinator], group)
        # a static member's restart replaces its member id only once that is stored
        static_error, _, static_took = _static(brokers[coordinator], static, sync=False)
    finally:
        for i in followers:
            os.kill(brokers[i].pid, signal.SIGCONT)
    assert join_error == NONE
    assert sync_error == COORDINATOR_NOT_AVAILABLE, sync_error
    assert 0.7 <= took < 5, took  # answered at offsets.commit.timeout.ms, not at once
    assert static_error == COORDINATOR_NOT_AVAILABLE and 0.7 <= static_took < 5, (static_error, static_took)
    assert _heartbeat(brokers[coordinator], static, old_member) in (NONE, REBALANCE_IN_PROGRESS)  # reverted

    # followers back (or out of the ISR): the member joins again and gets its assignment
    def synced() -> bool:
        return _join_and_sync(brokers[coordinator], group, member_id)[:2] == (NONE, NONE)

    wait_until(synced, timeout=30, interval=0.5, message="the group stored once the ISR is back")

    topic = unique_topic("grp-data")
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(timeout=20)
    confluent_produce(brokers[coordinator].bootstrap, topic, [Rec(b"k", b"v%d" % i) for i in range(5)])
    consumer = KafkaConsumer(topic, bootstrap_servers=brokers[coordinator].bootstrap, group_id=unique_topic("grp-kp"),
                             auto_offset_reset="earliest", consumer_timeout_ms=15000)
    got = []
    try:
        for message in consumer:
            got.append(message.value)
            if len(got) == 5:
                break
    finally:
        consumer.close()
    assert got == [b"v%d" % i for i in range(5)]
