"""A client hanging up in the middle of a request leaves nothing half done.

librdkafka drops its bootstrap connection while its auto-creating Metadata request is
in flight. Here raw sockets do the same on purpose, for many topics: send Metadata
(auto-create) or CreateTopics and close at once, sometimes with a reset. Afterwards
every topic that exists must be whole -- all its partitions in metadata, writable and
readable with confluent-kafka -- and asking for it again must describe it, never
answer TOPIC_ALREADY_EXISTS.
"""

from __future__ import annotations

import socket
import struct
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from .kafka_helpers import admin_client, consumer_conf, producer_conf, unique_topic
from .raw_kafka import (
    API_CREATE_TOPICS,
    API_METADATA,
    Reader,
    connect,
    create_topics_v2,
    metadata_v4,
    read_response,
    request,
)

PARTITIONS = 3
TOPICS = 60
TIME_BUDGET = 20.0
ERR_TOPIC_ALREADY_EXISTS = 36


def _hang_up(bootstrap: str, frame: bytes, reset: bool, delay: float) -> None:
    sock = connect(bootstrap)
    try:
        sock.sendall(frame)
        time.sleep(delay)  # spread the hang-ups over the handling: before, inside, after the save
        if reset:  # RST instead of FIN: the broker sees the loss at once
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


def _metadata_errors(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    """(topic error, number of partitions) for ``topic`` in a raw Metadata v4 answer."""
    with connect(bootstrap) as sock:
        sock.sendall(request(API_METADATA, 4, 5, metadata_v4([topic], allow_auto_topic_creation=True)))
        answer = read_response(sock)
    assert answer is not None, "broker closed the connection instead of answering Metadata"
    r = Reader(answer[1])
    r.i32()  # throttle
    for _ in range(r.i32()):  # brokers
        r.i32(), r.string(), r.i32(), r.string()
    r.string()  # cluster id
    r.i32()  # controller
    out = []
    for _ in range(r.i32()):
        error = r.i16()
        r.string()
        r.take(1)  # is_internal
        count = r.i32()
        for _ in range(count):  # v4: error, index, leader, replicas, isr
            r.i16(), r.i32(), r.i32()
            for _ in range(2):
                for _ in range(r.i32()):
                    r.i32()
        out.append((error, count))
    return out


def test_hanging_up_during_topic_creation_leaves_whole_topics(make_broker):
    b = make_broker(num_partitions=PARTITIONS)
    bs = b.bootstrap
    names = [unique_topic(f"hang{i}") for i in range(TOPICS)]
    deadline = time.monotonic() + TIME_BUDGET
    for i, name in enumerate(names):
        if time.monotonic() > deadline:
            names = names[:i]
            break
        if i % 3 == 2:
            frame = request(API_CREATE_TOPICS, 2, i, create_topics_v2([(name, PARTITIONS)]))
        else:
            frame = request(API_METADATA, 4, i, metadata_v4([name]))
        # Some topics are asked for twice, pipelined on one connection, as librdkafka does.
        _hang_up(bs, frame + frame if i % 4 == 0 else frame, reset=i % 2 == 0, delay=(i % 5) * 0.001)
    assert len(names) >= 10, "too few attempts in the time budget"

    # Every topic that exists is whole, and asking again describes it.
    admin = admin_client(bs)
    time.sleep(0.5)
    existing = [n for n in names if n in admin.list_topics(timeout=10).topics]
    print(f"{len(existing)} of {len(names)} topics created by requests whose client hung up")
    for name in existing:
        md = admin.list_topics(topic=name, timeout=10).topics[name]
        assert md.error is None, f"{name}: {md.error}"
        assert len(md.partitions) == PARTITIONS, f"{name}: {len(md.partitions)} partitions"
    for name in names:  # the ones not created yet are now, as auto-creation is on
        for error, count in _metadata_errors(bs, name):
            assert error != ERR_TOPIC_ALREADY_EXISTS, f"{name}: TOPIC_ALREADY_EXISTS in Metadata"
            assert (error, count) == (0, PARTITIONS), f"{name}: error {error}, {count} partitions"

    # Each of them takes writes on every partition and gives them back.
    producer = Producer(producer_conf(bs))
    errors: list[KafkaError] = []
    for name in names:
        for p in range(PARTITIONS):
            producer.produce(name, value=f"{name}/{p}".encode(), partition=p,
                             on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert producer.flush(30) == 0
    assert errors == []
    consumer = Consumer(consumer_conf(bs))
    try:
        consumer.assign([TopicPartition(n, p, 0) for n in names for p in range(PARTITIONS)])
        got: set[bytes] = set()
        until = time.monotonic() + 30
        while len(got) < len(names) * PARTITIONS and time.monotonic() < until:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got.add(msg.value())
    finally:
        consumer.close()
    assert got == {f"{n}/{p}".encode() for n in names for p in range(PARTITIONS)}


def test_librdkafka_producers_auto_creating_topics_deliver(make_broker):
    """librdkafka's own pattern: each new producer asks its bootstrap connection for an
    unknown topic (auto-creating it) and drops that connection as soon as it knows the
    broker; every record must still be delivered and read back."""
    b = make_broker(num_partitions=2)
    bs = b.bootstrap
    names = [unique_topic(f"auto{i}") for i in range(8)]
    for name in names:
        producer = Producer(producer_conf(bs, **{"enable.idempotence": True, "message.timeout.ms": 15000}))
        errors: list[KafkaError] = []
        producer.produce(name, value=name.encode(), partition=1,
                         on_delivery=lambda err, msg, errors=errors: errors.append(err) if err else None)
        assert producer.flush(20) == 0, name
        assert errors == [], name
    consumer = Consumer(consumer_conf(bs))
    try:
        consumer.assign([TopicPartition(n, 1, 0) for n in names])
        got: set[bytes] = set()
        until = time.monotonic() + 20
        while len(got) < len(names) and time.monotonic() < until:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got.add(msg.value())
    finally:
        consumer.close()
    assert got == {n.encode() for n in names}
