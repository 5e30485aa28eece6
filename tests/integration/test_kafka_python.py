"""kafka-python against a real Moldau broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import MessageSizeTooLargeError

from .kafka_helpers import (
    CODECS,
    Got,
    Rec,
    assert_records,
    create_topic,
    now_ms,
    sample_records,
    unique_topic,
    wait_for_topic,
    watermarks,
)

pytestmark = pytest.mark.timeout(90)


def producer(bootstrap: str, **conf) -> KafkaProducer:
    base = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": False,
        "linger_ms": 5,
        "request_timeout_ms": 15000,
        "max_block_ms": 15000,
        "delivery_timeout_ms": 30000,
        "retries": 3,
    }
    base.update(conf)
    return KafkaProducer(**base)


def produce(bootstrap: str, topic: str, records: list[Rec], partition: int = 0,
            chunks: int = 1, **conf) -> list:
    """Send in ``chunks`` flushes; returns RecordMetadata per record (raises on failure)."""
    p = producer(bootstrap, **conf)
    try:
        futures = []
        per_chunk = max(1, -(-len(records) // chunks))
        for start in range(0, len(records), per_chunk):
            for r in records[start:start + per_chunk]:
                futures.append(p.send(topic, value=r.value, key=r.key,
                                      headers=list(r.headers) or None,
                                      partition=partition, timestamp_ms=r.timestamp))
            p.flush(timeout=30)
        return [f.get(timeout=30) for f in futures]
    finally:
        p.close(timeout=10)


def consumer(bootstrap: str, **conf) -> KafkaConsumer:
    base = {
        "bootstrap_servers": bootstrap,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "request_timeout_ms": 15000,
        "fetch_max_wait_ms": 200,
    }
    base.update(conf)
    return KafkaConsumer(**base)


def consume(bootstrap: str, topic: str, count: int, partition: int = 0, start: int = 0,
            timeout: float = 20.0, extra_wait: float = 0.0, **conf) -> list[Got]:
    c = consumer(bootstrap, **conf)
    tp = TopicPartition(topic, partition)
    out: list[Got] = []
    try:
        c.assign([tp])
        c.seek(tp, start)
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                out.extend(_got(r) for r in recs)
        extra = time.monotonic() + extra_wait
        while time.monotonic() < extra:
            for recs in c.poll(timeout_ms=100).values():
                out.extend(_got(r) for r in recs)
    finally:
        c.close()
    return out


def _got(r) -> Got:
    return Got(r.offset, r.key, r.value, tuple((k, v) for k, v in (r.headers or [])),
               r.timestamp, {0: "create", 1: "log_append"}.get(r.timestamp_type))


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_every_codec(shared_broker, topic, codec):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(60, seed=11, null_header_values=False)
    meta = produce(bs, topic, recs, chunks=3, acks="all",
                   compression_type=None if codec == "none" else codec)
    assert [m.offset for m in meta] == list(range(len(recs)))
    assert all(m.partition == 0 and m.topic == topic for m in meta)
    got = consume(bs, topic, len(recs), extra_wait=0.5)
    assert_records(got, recs)
    assert all(g.timestamp_type == "create" for g in got)


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(shared_broker, topic, acks):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(30, seed=12, null_header_values=False)
    meta = produce(bs, topic, recs, chunks=3, acks=acks)
    if acks != 0:
        assert [m.offset for m in meta] == list(range(len(recs)))
    assert_records(consume(bs, topic, len(recs), extra_wait=0.3), recs)


def test_default_producer_config(shared_broker, topic):
    """kafka-python 3 enables idempotence by default; a plain KafkaProducer must work."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    p = KafkaProducer(bootstrap_servers=bs, request_timeout_ms=15000, max_block_ms=15000,
                      delivery_timeout_ms=30000)
    try:
        metas = [p.send(topic, b"v%d" % i, key=b"k").get(timeout=30) for i in range(5)]
    finally:
        p.close(timeout=10)
    assert [m.offset for m in metas] == list(range(5))
    assert [g.value for g in consume(bs, topic, 5)] == [b"v%d" % i for i in range(5)]


def test_consume_from_an_offset_inside_a_batch(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(12, seed=13, nulls=False, null_header_values=False)
    produce(bs, topic, recs, linger_ms=100)
    assert_records(consume(bs, topic, 6, start=6), recs[6:], first_offset=6)


def test_small_max_partition_fetch_bytes(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = [Rec(b"k%d" % i, bytes([i]) * 10_000, (), None) for i in range(30)]
    produce(bs, topic, recs, chunks=3, linger_ms=20)
    got = consume(bs, topic, len(recs), timeout=30, max_partition_fetch_bytes=1024,
                  fetch_max_bytes=2048)
    assert_records(got, recs, timestamps=False)


def test_offsets_for_times_beginning_end(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=2)
    t0 = now_ms() - 7_200_000
    recs = [Rec(b"k%d" % i, b"v%d" % i, (), t0 + i * 1000) for i in range(10)]
    produce(bs, topic, recs, chunks=4)
    c = consumer(bs)
    tp, empty = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        def lookup(ts):
            return c.offsets_for_times({tp: ts}, timeout_ms=10000)[tp]

        first = lookup(t0 - 1)
        assert (first.offset, first.timestamp) == (0, t0)
        mid = lookup(t0 + 4500)
        assert (mid.offset, mid.timestamp) == (5, t0 + 5000)
        exact = lookup(t0 + 9000)
        assert (exact.offset, exact.timestamp) == (9, t0 + 9000)
        assert lookup(t0 + 9001) is None
        assert c.offsets_for_times({empty: t0}, timeout_ms=10000)[empty] is None
        assert c.beginning_offsets([tp, empty], timeout_ms=10000) == {tp: 0, empty: 0}
        assert c.end_offsets([tp, empty], timeout_ms=10000) == {tp: 10, empty: 0}
    finally:
        c.close()


def test_message_size_limit(make_broker):
    limit = 4096
    b = make_broker(**{"message.max.bytes": limit})
    topic = unique_topic("kp-size")
    create_topic(b.bootstrap, topic)
    conf = {"max_request_size": 10_000_000, "compression_type": None, "retries": 0}
    produce(b.bootstrap, topic, [Rec(None, b"u" * (limit - 200), (), None)], **conf)
    with pytest.raises(MessageSizeTooLargeError):
        produce(b.bootstrap, topic, [Rec(None, b"o" * (limit + 100), (), None)], **conf)
    got = consume(b.bootstrap, topic, 1, extra_wait=0.5)
    assert [g.value for g in got] == [b"u" * (limit - 200)]
    assert watermarks(b.bootstrap, topic) == (0, 1)


def test_metadata_for_unknown_topic_auto_creates(make_broker):
    b = make_broker(**{"auto.create.topics.enable": "true", "num.partitions": 2})
    topic = unique_topic("kp-auto")
    meta = produce(b.bootstrap, topic, [Rec(b"k", b"v", (), None)], partition=1)
    assert meta[0].offset == 0 and meta[0].partition == 1
    wait_for_topic(b.bootstrap, topic, partitions=2)
    assert consume(b.bootstrap, topic, 1, partition=1)[0].value == b"v"


@pytest.mark.parametrize("api_version", [(0, 11), (1, 0), (2, 1), (2, 8)])
def test_pinned_older_api_versions(shared_broker, topic, api_version):
    """Users pin api_version; kafka-python then uses that release's request versions."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(20, seed=14, null_header_values=False)
    meta = produce(bs, topic, recs, chunks=2, api_version=api_version, compression_type="gzip")
    assert [m.offset for m in meta] == list(range(len(recs)))
    got = consume(bs, topic, len(recs), api_version=api_version, extra_wait=0.3)
    assert_records(got, recs)


def test_fetch_min_bytes_waits_at_most_max_wait(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    produce(bs, topic, [Rec(b"k", b"tiny", (), None)])
    started = time.monotonic()
    got = consume(bs, topic, 1, fetch_min_bytes=10_000_000, fetch_max_wait_ms=1000)
    took = time.monotonic() - started
    assert [g.value for g in got] == [b"tiny"]
    assert took < 8, f"fetch with unmet fetch.min.bytes took {took:.1f}s (max wait 1 s)"
