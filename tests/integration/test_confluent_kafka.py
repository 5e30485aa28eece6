"""confluent-kafka (librdkafka) against a real Moldau broker."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

from .kafka_helpers import (
    CODECS,
    Rec,
    admin_client,
    assert_delivered,
    assert_records,
    confluent_consume,
    confluent_produce,
    consumer_conf,
    create_topic,
    now_ms,
    sample_records,
    watermarks,
)

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_every_codec(shared_broker, topic, codec):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(60, seed=1)
    results = confluent_produce(bs, topic, recs, chunks=3, acks="all", **{"compression.type": codec})
    assert_delivered(results)
    got = confluent_consume(bs, topic, len(recs), extra_wait=0.5)
    assert_records(got, recs)
    assert all(g.timestamp_type == "create" for g in got)
    assert watermarks(bs, topic) == (0, len(recs))


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(shared_broker, topic, acks):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(30, seed=2)
    results = confluent_produce(bs, topic, recs, chunks=3, acks=acks)
    # acks=0: the producer gets no offsets back, only "sent" (offset None)
    assert_delivered(results, check_offsets=acks != "0")
    if acks == "0":
        assert all(r[2] in (None, -1, -1001) for r in results), results[:3]
    got = confluent_consume(bs, topic, len(recs), extra_wait=0.3)
    assert_records(got, recs)


def test_multiple_partitions_keep_their_own_order(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=3)
    per_partition = {p: sample_records(20, seed=10 + p) for p in range(3)}
    for p, recs in per_partition.items():
        assert_delivered(confluent_produce(bs, topic, recs, partition=p, chunks=2))
    for p, recs in per_partition.items():
        assert_records(confluent_consume(bs, topic, len(recs), partition=p), recs)
        assert watermarks(bs, topic, p) == (0, 20)


def test_consume_from_an_offset_inside_a_batch(shared_broker, topic):
    """A fetch inside a batch returns the whole batch; the client skips to the offset."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(10, seed=3, nulls=False)
    # one flush, lingering: a single batch
    assert_delivered(confluent_produce(bs, topic, recs, **{"linger.ms": 50}))
    got = confluent_consume(bs, topic, 5, start=5)
    assert_records(got, recs[5:], first_offset=5)


def test_small_fetch_limits_still_make_progress(shared_broker, topic):
    """Batches bigger than max.partition.fetch.bytes / fetch.max.bytes are still returned."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = [Rec(b"k%d" % i, bytes([i]) * 20_000, (), None) for i in range(40)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=4, **{"linger.ms": 20}))
    got = confluent_consume(
        bs, topic, len(recs), timeout=30,
        # librdkafka's floor: message.max.bytes >= 1000, fetch.max.bytes >= message.max.bytes
        **{"max.partition.fetch.bytes": 1024, "fetch.max.bytes": 2048,
           "message.max.bytes": 1000},
    )
    assert_records(got, recs, timestamps=False)


def test_long_poll_fetch_delivers_new_records(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    c = Consumer(consumer_conf(bs, **{"fetch.wait.max.ms": 2000}))
    received = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        # let the consumer start waiting on an empty partition
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            msg = c.poll(0.1)
            assert msg is None or msg.error(), "unexpected record in empty topic"

        def later():
            assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"late", (), None)]))

        t = threading.Thread(target=later)
        sent_at = time.monotonic()
        t.start()
        deadline = time.monotonic() + 15
        while not received and time.monotonic() < deadline:
            msg = c.poll(0.1)
            if msg is not None and not msg.error():
                received.append((msg.value(), time.monotonic() - sent_at))
        t.join(20)
    finally:
        c.close()
    assert received and received[0][0] == b"late"
    # fetch.wait.max.ms is 2 s; a delayed fetch should answer as soon as data arrives
    assert received[0][1] < 5, f"record arrived only after {received[0][1]:.1f}s"


def test_offsets_for_times_and_watermarks(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    t0 = now_ms() - 3_600_000
    recs = [Rec(b"k%d" % i, b"v%d" % i, (), t0 + i * 1000) for i in range(10)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=3))
    c = Consumer(consumer_conf(bs))
    try:
        def lookup(ts: int) -> int:
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert tp.error is None, tp.error
            return tp.offset

        assert lookup(t0 - 10_000) == 0
        assert lookup(t0) == 0
        assert lookup(t0 + 1) == 1
        assert lookup(t0 + 2500) == 3
        assert lookup(t0 + 9000) == 9
        # after the last record: no offset (-1, librdkafka's OFFSET_END)
        assert lookup(t0 + 9001) == OFFSET_END
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 10)
    finally:
        c.close()


def test_admin_list_offsets(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    t0 = now_ms() - 100_000
    recs = [Rec(None, b"v%d" % i, (), t0 + i * 100) for i in range(8)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=2))
    admin = admin_client(bs)
    tp = TopicPartition(topic, 0)

    def offset_of(spec) -> tuple[int, int]:
        info = admin.list_offsets({tp: spec}, request_timeout=10)[tp].result(timeout=10)
        return info.offset, info.timestamp

    assert offset_of(OffsetSpec.earliest())[0] == 0
    assert offset_of(OffsetSpec.latest())[0] == 8
    assert offset_of(OffsetSpec.for_timestamp(t0 + 250)) == (3, t0 + 300)
    assert offset_of(OffsetSpec.for_timestamp(t0 + 10_000))[0] == -1


def test_log_append_time_topic(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, config={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    recs = [Rec(b"k", b"v%d" % i, (), 1_000_000_000_000 + i) for i in range(5)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=2))
    after = now_ms()
    got = confluent_consume(bs, topic, len(recs))
    assert [g.value for g in got] == [r.value for r in recs]
    for g in got:
        assert g.timestamp_type == "log_append", g
        assert before - 1000 <= g.timestamp <= after + 1000, (before, g.timestamp, after)
    c = Consumer(consumer_conf(bs))
    try:
        [tp] = c.offsets_for_times([TopicPartition(topic, 0, before - 1000)], timeout=10)
        assert tp.offset == 0
        # the client's timestamps were replaced, so they are not what is indexed
        [tp] = c.offsets_for_times([TopicPartition(topic, 0, after + 60_000)], timeout=10)
        assert tp.offset == OFFSET_END
    finally:
        c.close()


def test_message_just_under_default_limit_and_over(shared_broker, topic):
    """Default message.max.bytes is 1048588: the broker, not the client, rejects bigger."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    conf = {"message.max.bytes": 10_000_000, "compression.type": "none"}
    ok = confluent_produce(bs, topic, [Rec(b"k", b"x" * 1_000_000, (), None)], **conf)
    assert_delivered(ok)
    big = confluent_produce(bs, topic, [Rec(b"k", b"y" * 1_100_000, (), None)], **conf)
    assert big[0][0] is not None, "1.1 MB record accepted over the default 1048588 limit"
    assert big[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE, big[0][0]
    got = confluent_consume(bs, topic, 1, extra_wait=0.5)
    assert len(got) == 1 and got[0].value == b"x" * 1_000_000


def test_small_broker_message_max_bytes(make_broker, topic):
    limit = 4096
    b = make_broker(**{"message.max.bytes": limit})
    create_topic(b.bootstrap, topic)
    conf = {"compression.type": "none", "message.max.bytes": 10_000_000}
    ok = confluent_produce(b.bootstrap, topic, [Rec(b"k", b"u" * (limit - 200), (), None)], **conf)
    assert_delivered(ok)
    big = confluent_produce(b.bootstrap, topic, [Rec(b"k", b"o" * (limit + 100), (), None)], **conf)
    assert big[0][0] is not None and big[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE, big
    # compressible records are measured after compression
    small = confluent_produce(b.bootstrap, topic, [Rec(b"k", b"z" * (limit * 4), (), None)],
                              **dict(conf, **{"compression.type": "gzip"}))
    assert_delivered(small, first_offset=1)
    got = confluent_consume(b.bootstrap, topic, 2, extra_wait=0.5)
    assert [g.value for g in got] == [b"u" * (limit - 200), b"z" * (limit * 4)]


def test_topic_max_message_bytes(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, config={"max.message.bytes": "2048"})
    conf = {"compression.type": "none"}
    assert_delivered(confluent_produce(bs, topic, [Rec(None, b"a" * 1500, (), None)], **conf))
    res = confluent_produce(bs, topic, [Rec(None, b"b" * 3000, (), None)], **conf)
    assert res[0][0] is not None and res[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE, res
    assert watermarks(bs, topic) == (0, 1)


def test_idempotent_producer(shared_broker, topic):
    """librdkafka's idempotent producer needs InitProducerId and sequence checks."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(30, seed=5)
    results = confluent_produce(bs, topic, recs, chunks=3, **{"enable.idempotence": True})
    assert_delivered(results)
    assert_records(confluent_consume(bs, topic, len(recs), extra_wait=0.3), recs)
