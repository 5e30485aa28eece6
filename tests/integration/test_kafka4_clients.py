"""Kafka 4.x clients (issue 15, item 3): the newest API versions, DescribeTopicPartitions
(KIP-966), client telemetry (KIP-714) and incremental fetch sessions (KIP-227).

Requests no client at hand sends are written and read by kio (kio_wire.py), an
implementation independent of Moldau's codec; the rest use real clients
(confluent-kafka's telemetry, kafka-python's fetch sessions, librdkafka and aiokafka
consumers of many partitions).

Cost: one module-scoped broker, one short-lived broker and a cluster of three; about 30 s.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
import uuid

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition
from kio.schema.describe_topic_partitions.v0.request import (
    Cursor,
    DescribeTopicPartitionsRequest,
    TopicRequest,
)
from kio.schema.fetch.v18 import request as fetch18
from kio.schema.get_telemetry_subscriptions.v0.request import GetTelemetrySubscriptionsRequest
from kio.schema.list_offsets.v8 import request as list8
from kio.schema.list_offsets.v11 import request as list11
from kio.schema.metadata.v13.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v13 import request as produce13
from kio.schema.push_telemetry.v0.request import PushTelemetryRequest
from kio.static.primitive import Records

from . import kio_wire
from .kafka_helpers import (
    Rec,
    confluent_produce,
    create_topic,
    read_to_end,
    unique_topic,
    wait_until,
)
from .raw_kafka import connect, record_batch

NONE, INVALID_TOPIC, UNKNOWN_TOPIC, UNSUPPORTED_VERSION, INVALID_REQUEST = 0, 17, 3, 35, 42
FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH = 70, 71
THROTTLING_QUOTA_EXCEEDED, UNKNOWN_TOPIC_ID, UNKNOWN_SUBSCRIPTION_ID = 89, 100, 117
ZERO = uuid.UUID(int=0)


def topic_id(bootstrap: str, name: str) -> uuid.UUID:
    answer = kio_wire.call(bootstrap, MetadataRequest(
        topics=(MetadataRequestTopic(topic_id=None, name=name),), allow_auto_topic_creation=False,
        include_topic_authorized_operations=False))
    assert answer.error_code == NONE  # v13's top-level error code
    return answer.topics[0].topic_id  # type: ignore[no-any-return]


def fetch_request(topics: dict[uuid.UUID, dict[int, int]], session_id: int = 0, epoch: int = -1,
                  forgotten: dict[uuid.UUID, list[int]] | None = None, max_wait_ms: int = 0) -> fetch18.FetchRequest:
    return fetch18.FetchRequest(
        cluster_id=None,
        replica_state=fetch18.ReplicaState(replica_id=-1, replica_epoch=-1),
        max_wait=datetime.timedelta(milliseconds=max_wait_ms), min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        session_id=session_id, session_epoch=epoch,
        topics=tuple(
            fetch18.FetchTopic(topic_id=tid, partitions=tuple(
                fetch18.FetchPartition(partition=p, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1,
                                       log_start_offset=-1, partition_max_bytes=1 << 20, replica_directory_id=ZERO,
                                       high_watermark=(1 << 63) - 1)
                for p, offset in parts.items()))
            for tid, parts in topics.items()),
        forgotten_topics_data=tuple(fetch18.ForgottenTopic(topic_id=t, partitions=tuple(ps))
                                    for t, ps in (forgotten or {}).items()),
        rack_id="",
    )


def partitions_of(answer: object) -> dict[int, object]:
    return {p.partition_index: p for t in answer.responses for p in t.partitions}  # type: ignore[attr-defined]


# ------------------------------------------------------------ DescribeTopicPartitions
def _read_values(consumer: KafkaConsumer, wanted: set[bytes], timeout: float = 30.0) -> set[bytes]:
    """The values a kafka-python consumer reads until it has ``wanted`` (or ``timeout`` s)."""
    got: set[bytes] = set()
    deadline = time.monotonic() + timeout
    while got != wanted and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.update(r.value for r in records)
    return got


def test_describe_topic_partitions_pages_with_a_cursor(shared_broker):
    bs = shared_broker.bootstrap
    prefix = unique_topic("dtp")
    first, second = prefix + "-a", prefix + "-b"
    create_topic(bs, first, partitions=5)
    create_topic(bs, second, partitions=3)
    wanted = (TopicRequest(name=second), TopicRequest(name=first))

    page = kio_wire.call(bs, DescribeTopicPartitionsRequest(topics=wanted, response_partition_limit=4))
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in page.topics] == [(first, [0, 1, 2, 3])]
    assert (page.next_cursor.topic_name, page.next_cursor.partition_index) == (first, 4)
    assert page.topics[0].topic_id == topic_id(bs, first)
    p0 = page.topics[0].partitions[0]
    assert (p0.error_code, p0.leader_id, p0.replica_nodes, p0.isr_nodes, p0.offline_replicas) == (0, 0, (0,), (0,), ())

    rest = kio_wire.call(bs, DescribeTopicPartitionsRequest(
        topics=wanted, response_partition_limit=4,
        cursor=Cursor(topic_name=page.next_cursor.topic_name, partition_index=page.next_cursor.partition_index)))
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in rest.topics] == [(first, [4]), (second, [0, 1, 2])]
    assert rest.next_cursor is None

    # a page that fills up exactly at a topic's end points at the next topic's start
    exact = kio_wire.call(bs, DescribeTopicPartitionsRequest(topics=wanted, response_partition_limit=5))
    assert [t.name for t in exact.topics] == [first]
    assert (exact.next_cursor.topic_name, exact.next_cursor.partition_index) == (second, 0)

    odd = kio_wire.call(bs, DescribeTopicPartitionsRequest(
        topics=(TopicRequest(name=prefix + "-none"), TopicRequest(name="bad name!")), response_partition_limit=10))
    assert sorted((t.name, t.error_code, t.topic_id or ZERO) for t in odd.topics) == [
        ("bad name!", INVALID_TOPIC, ZERO), (prefix + "-none", UNKNOWN_TOPIC, ZERO)]

    refused = kio_wire.call(bs, DescribeTopicPartitionsRequest(
        topics=(TopicRequest(name=first),), cursor=Cursor(topic_name=second, partition_index=0)))
    assert [(t.name, t.error_code) for t in refused.topics] == [(first, INVALID_REQUEST)]

    # every topic: only existing ones, in name order, all of ours among them
    everything = kio_wire.call(bs, DescribeTopicPartitionsRequest(topics=(), response_partition_limit=2000))
    names = [t.name for t in everything.topics]
    assert names == sorted(names) and {first, second} <= set(names)


# ------------------------------------------------------------ telemetry (KIP-714)
@pytest.fixture(scope="module")
def telemetry_broker():
    from .conftest import _dispose, _new_broker

    b = _new_broker({"moldau.client.telemetry.enable": True}, "telemetry")
    yield b
    _dispose(b)


def test_telemetry_is_not_advertised_by_default(shared_broker, topic):
    """As a Kafka broker without a client-telemetry reporter: keys 71-72 are not listed,
    so librdkafka never asks (and logs nothing about it)."""
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    versions = kio_wire.call(shared_broker.bootstrap, ApiVersionsRequest(
        client_software_name="t", client_software_version="1"))
    assert not {k.api_key for k in versions.api_keys} & {71, 72}
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("test-kafka4-no-telemetry")
    logger.addHandler(Collect())
    logger.setLevel(logging.DEBUG)
    producer = Producer({"bootstrap.servers": shared_broker.bootstrap, "debug": "telemetry,protocol"}, logger=logger)
    producer.produce(topic, b"v")
    assert producer.flush(15) == 0
    assert not any("GetTelemetrySubscriptions" in x and "Sent" in x for x in lines)


def test_confluent_kafka_gets_the_empty_telemetry_subscription(telemetry_broker, topic):
    """With it on: librdkafka (2.5+) asks for its subscription; told to collect nothing,
    it schedules the next ask after the push interval and never pushes."""
    shared_broker = telemetry_broker
    mark = shared_broker.log_size()
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("test-kafka4-telemetry")
    logger.addHandler(Collect())
    logger.setLevel(logging.DEBUG)
    producer = Producer({"bootstrap.servers": shared_broker.bootstrap, "debug": "telemetry,protocol"}, logger=logger)
    try:
        producer.produce(topic, b"v")
        assert producer.flush(15) == 0
        assert wait_until(lambda: producer.poll(0.1) is not None or any("Handled GetTelemetrySubscriptions" in x for x in lines),
                          timeout=15)
    finally:
        producer.flush(5)
    handled = [x for x in lines if "Handled GetTelemetrySubscriptions" in x]
    assert handled and "err = Success" in handled[0] and "metrics = 0" in handled[0]
    assert "scheduling FSM after 300000000 microseconds" in handled[0]
    assert not any("PushTelemetryRequest" in x for x in lines)
    log = shared_broker.log_text(mark)
    assert "closing" not in log and "Traceback" not in log and "handler failed" not in log


def test_telemetry_requests_are_validated_as_kafka_does(telemetry_broker):
    bs = telemetry_broker.bootstrap
    got = kio_wire.call(bs, GetTelemetrySubscriptionsRequest(client_instance_id=ZERO))
    assert got.error_code == NONE and got.client_instance_id not in (None, ZERO)
    assert got.requested_metrics == () and got.push_interval == datetime.timedelta(minutes=5)
    assert set(got.accepted_compression_types) == {1, 2, 3, 4} and got.delta_temporality
    assert got.telemetry_max_bytes == 1048576
    me = got.client_instance_id
    again = kio_wire.call(bs, GetTelemetrySubscriptionsRequest(client_instance_id=me))
    assert again.error_code == THROTTLING_QUOTA_EXCEEDED  # before the push interval

    def push(subscription: int, terminating: bool = False, instance: uuid.UUID = me) -> int:
        answer = kio_wire.call(bs, PushTelemetryRequest(
            client_instance_id=instance, subscription_id=subscription, terminating=terminating,
            compression_type=0, metrics=b"\x0a\x00"))
        return answer.error_code  # type: ignore[no-any-return]

    assert push(got.subscription_id ^ 1) == UNKNOWN_SUBSCRIPTION_ID  # the push right after a get is timely
    assert push(got.subscription_id) == THROTTLING_QUOTA_EXCEEDED  # the next one is not
    assert push(got.subscription_id, terminating=True) == NONE  # a terminating push always is
    assert push(got.subscription_id) == INVALID_REQUEST  # nothing after terminating
    assert push(0, instance=ZERO) == INVALID_REQUEST


# ------------------------------------------------------------ Produce v13, Fetch v18, ListOffsets v11
def test_produce_and_fetch_by_topic_id(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=1)
    tid = topic_id(bs, topic)
    batch = record_batch([b"one", b"two"], int(time.time() * 1000))

    def produce(target: uuid.UUID) -> object:
        return kio_wire.call(bs, produce13.ProduceRequest(
            transactional_id=None, acks=-1, timeout=datetime.timedelta(seconds=10),
            topic_data=(produce13.TopicProduceData(topic_id=target, partition_data=(
                produce13.PartitionProduceData(index=0, records=Records(batch)),)),)))

    done = produce(tid)
    assert done.responses[0].topic_id == tid
    assert (done.responses[0].partition_responses[0].error_code, done.responses[0].partition_responses[0].base_offset) == (0, 0)
    unknown = produce(uuid.uuid4())
    assert unknown.responses[0].partition_responses[0].error_code == UNKNOWN_TOPIC_ID

    answer = kio_wire.call(bs, fetch_request({tid: {0: 0}}))
    (data,) = partitions_of(answer).values()
    assert data.error_code == 0 and data.high_watermark == 2 and b"one" in data.records and b"two" in data.records

    # a request of more than a thousand entries takes the offloaded (paced) path
    many = kio_wire.call(bs, produce13.ProduceRequest(
        transactional_id=None, acks=1, timeout=datetime.timedelta(seconds=10),
        topic_data=(produce13.TopicProduceData(topic_id=tid, partition_data=tuple(
            produce13.PartitionProduceData(index=i, records=Records(batch)) for i in range(1200))),)))
    (answered,) = many.responses
    assert answered.topic_id == tid
    codes = [p.error_code for p in answered.partition_responses]
    assert codes[0] == 0 and set(codes[1:]) == {UNKNOWN_TOPIC} and len(codes) == 1200


def test_list_offsets_v11_tiered_timestamps(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=1)
    confluent_produce(bs, topic, [Rec(None, b"x")] * 3)

    def ask(module: object, timestamp: int) -> object:
        extra = {"timeout": datetime.timedelta(seconds=5)} if module is list11 else {}
        answer = kio_wire.call(bs, module.ListOffsetsRequest(  # type: ignore[attr-defined]
            replica_id=-1, isolation_level=0, topics=(module.ListOffsetsTopic(  # type: ignore[attr-defined]
                name=topic, partitions=(module.ListOffsetsPartition(  # type: ignore[attr-defined]
                    partition_index=0, current_leader_epoch=-1, timestamp=timestamp),)),), **extra))
        return answer.topics[0].partitions[0]

    latest = ask(list11, -1)
    assert (latest.error_code, latest.offset) == (0, 3)
    for tiered in (-5, -6):  # latest tiered, earliest pending upload: no tiered storage
        got = ask(list11, tiered)
        assert (got.error_code, got.offset, got.leader_epoch) == (0, -1, -1)
    assert ask(list8, -5).error_code == UNSUPPORTED_VERSION  # -5 needs v9


def test_describe_cluster_v2_and_describe_log_dirs_v4(shared_broker, topic):
    from kio.schema.describe_cluster.v2.request import DescribeClusterRequest
    from kio.schema.describe_log_dirs.v4.request import (
        DescribableLogDirTopic,
        DescribeLogDirsRequest,
    )

    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=1)
    cluster = kio_wire.call(bs, DescribeClusterRequest(
        include_cluster_authorized_operations=False, endpoint_type=1, include_fenced_brokers=True))
    assert cluster.error_code == NONE
    assert [(b.broker_id, b.is_fenced) for b in cluster.brokers] == [(0, False)]
    dirs = kio_wire.call(bs, DescribeLogDirsRequest(topics=(DescribableLogDirTopic(topic=topic, partitions=(0,)),)))
    (result,) = dirs.results
    assert result.error_code == NONE and result.total_bytes > 0
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in result.topics] == [(topic, [0])]


# ------------------------------------------------------------ fetch sessions (KIP-227)
def test_incremental_fetch_sessions(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=3)
    tid = topic_id(bs, topic)
    confluent_produce(bs, topic, [Rec(None, b"p0")], partition=0)
    sock = connect(bs)
    try:
        full = kio_wire.call(sock, fetch_request({tid: {0: 0, 1: 0, 2: 0}}, epoch=0))
        assert full.error_code == 0 and full.session_id != 0
        assert sorted(partitions_of(full)) == [0, 1, 2]
        sid = full.session_id

        # nothing new: an incremental fetch names nothing and is told nothing
        quiet = kio_wire.call(sock, fetch_request({tid: {0: 1}}, sid, 1, max_wait_ms=50))
        assert (quiet.error_code, quiet.session_id, partitions_of(quiet)) == (0, sid, {})

        # a record on partition 2: only partition 2 is answered, with it
        confluent_produce(bs, topic, [Rec(None, b"p2")], partition=2)
        news = kio_wire.call(sock, fetch_request({}, sid, 2, max_wait_ms=2000))
        assert list(partitions_of(news)) == [2] and b"p2" in partitions_of(news)[2].records

        again = kio_wire.call(sock, fetch_request({}, sid, 2))  # the same epoch twice
        assert (again.error_code, again.session_id) == (INVALID_FETCH_SESSION_EPOCH, 0)
        missing = kio_wire.call(sock, fetch_request({}, sid + 1, 3))
        assert missing.error_code == FETCH_SESSION_ID_NOT_FOUND

        # forget partition 2 and move partition 0 on; a record there is no longer news
        moved = kio_wire.call(sock, fetch_request({tid: {2: 1}}, sid, 3, forgotten={tid: [2]}, max_wait_ms=50))
        assert moved.error_code == 0
        confluent_produce(bs, topic, [Rec(None, b"late")], partition=2)
        confluent_produce(bs, topic, [Rec(None, b"p1")], partition=1)
        later = kio_wire.call(sock, fetch_request({}, sid, 4, max_wait_ms=2000))
        assert list(partitions_of(later)) == [1]

        # a full fetch naming the session closes it
        closed = kio_wire.call(sock, fetch_request({tid: {0: 0}}, sid, -1))
        assert (closed.error_code, closed.session_id) == (0, 0)
        gone = kio_wire.call(sock, fetch_request({}, sid, 5))
        assert gone.error_code == FETCH_SESSION_ID_NOT_FOUND
    finally:
        sock.close()


def test_no_session_without_cache_slots(make_broker, topic):
    b = make_broker(**{"max.incremental.fetch.session.cache.slots": 0})
    create_topic(b.bootstrap, topic, partitions=1)
    answer = kio_wire.call(b.bootstrap, fetch_request({topic_id(b.bootstrap, topic): {0: 0}}, epoch=0))
    assert (answer.error_code, answer.session_id) == (0, 0)


def test_consumers_of_many_partitions_read_everything(shared_broker, topic):
    """kafka-python uses incremental sessions, librdkafka and aiokafka full fetches."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=50)
    for p in range(50):
        confluent_produce(bs, topic, [Rec(None, b"%d-%d" % (p, i)) for i in range(4)], partition=p)
    expected = {b"%d-%d" % (p, i) for p in range(50) for i in range(4)}

    consumer = KafkaConsumer(bootstrap_servers=bs, auto_offset_reset="earliest", enable_auto_commit=False,
                             fetch_max_wait_ms=100, max_partition_fetch_bytes=1024)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(50)])
        assert _read_values(consumer, expected) == expected
        handlers = consumer._fetcher._session_handlers  # noqa: SLF001 - the session it was given
        assert any(h.next_metadata.session_id != 0 for h in handlers.values())
        # more records later reach it through the incremental session
        for p in (3, 47):
            confluent_produce(bs, topic, [Rec(None, b"later-%d" % p)], partition=p)
        later: set[bytes] = set()
        deadline = time.monotonic() + 20
        while len(later) < 2 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                later.update(r.value for r in records)
        assert later == {b"later-3", b"later-47"}
    finally:
        consumer.close()

    everything = expected | {b"later-3", b"later-47"}
    assert set(read_to_end(bs, topic, partitions=50)) == everything

    async def aiokafka_read() -> set[bytes]:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition as TP
        c = AIOKafkaConsumer(bootstrap_servers=bs, auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        try:
            c.assign([TP(topic, p) for p in range(50)])
            seen: set[bytes] = set()
            deadline = time.monotonic() + 30
            while seen != everything and time.monotonic() < deadline:
                for records in (await c.getmany(timeout_ms=200)).values():
                    seen.update(r.value for r in records)
            return seen
        finally:
            await c.stop()

    assert asyncio.run(aiokafka_read()) == everything




# ------------------------------------------------------------ in a cluster
def test_cluster_pages_and_sessions_on_every_broker(cluster, topic):
    """Each broker answers DescribeTopicPartitions from the cluster's metadata, and a
    kafka-python consumer keeps one incremental fetch session with each leader."""
    from confluent_kafka.admin import NewTopic

    from .cluster_helpers import start_three
    from .kafka_helpers import admin_client

    brokers = start_three(cluster)
    bs = brokers[1].bootstrap
    admin = admin_client(bs)
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=2)], request_timeout=15)[topic].result(20)
    meta = {}

    def described() -> bool:
        md = admin_client(bs).list_topics(topic=topic, timeout=10).topics[topic]
        meta.update({i: (p.leader, tuple(p.replicas)) for i, p in md.partitions.items()})
        return len(md.partitions) == 6 and all(p.leader >= 0 for p in md.partitions.values())

    assert wait_until(described, timeout=20)
    for b in brokers.values():
        page = kio_wire.call(b.bootstrap, DescribeTopicPartitionsRequest(topics=(TopicRequest(name=topic),),
                                                                         response_partition_limit=4))
        got = {p.partition_index: (p.leader_id, p.replica_nodes) for t in page.topics for p in t.partitions}
        assert got == {i: meta[i] for i in range(4)}
        assert (page.next_cursor.topic_name, page.next_cursor.partition_index) == (topic, 4)
    assert len({leader for leader, _ in meta.values()}) > 1  # the consumer fetches from several brokers

    values = {b"%d" % i for i in range(60)}
    for p in range(6):
        confluent_produce(bs, topic, [Rec(None, b"%d" % i) for i in range(p, 60, 6)], partition=p, acks="all")
    consumer = KafkaConsumer(bootstrap_servers=bs, auto_offset_reset="earliest", enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(6)])
        assert _read_values(consumer, values) == values
        sessions = [h.next_metadata.session_id for h in consumer._fetcher._session_handlers.values()]  # noqa: SLF001
        assert len(sessions) > 1 and all(sessions)
    finally:
        consumer.close()
