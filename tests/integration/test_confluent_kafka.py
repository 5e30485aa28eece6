"""confluent-kafka (librdkafka) against a real Moldau broker."""

from __future__ import annotations

import os
import threading
import time

import pytest
from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    Producer,
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
    producer_conf,
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
    # the broker rewrote the batches' timestamps: their CRCs must still check out
    got = confluent_consume(bs, topic, len(recs), **{"check.crcs": True})
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


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_out_of_range_offset_is_reset(shared_broker, topic, reset):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    assert_delivered(confluent_produce(bs, topic, [Rec(None, b"old%d" % i, (), None)
                                                   for i in range(5)]))
    c = Consumer(consumer_conf(bs, **{"auto.offset.reset": reset}))
    got = []
    try:
        c.assign([TopicPartition(topic, 0, 1000)])  # past the end: OFFSET_OUT_OF_RANGE
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            msg = c.poll(0.1)
            if msg is not None and not msg.error():
                got.append((msg.offset(), msg.value()))
        assert_delivered(confluent_produce(bs, topic, [Rec(None, b"new", (), None)]),
                         first_offset=5)
        deadline = time.monotonic() + 10
        while (not got or got[-1][1] != b"new") and time.monotonic() < deadline:
            msg = c.poll(0.1)
            if msg is not None and not msg.error():
                got.append((msg.offset(), msg.value()))
    finally:
        c.close()
    if reset == "earliest":
        assert got == [(i, b"old%d" % i) for i in range(5)] + [(5, b"new")]
    else:
        assert got == [(5, b"new")]


def test_one_producer_many_partitions_and_topics(shared_broker, topic):
    """Produce requests carrying several topics and partitions at once."""
    bs = shared_broker.bootstrap
    other = topic + "-b"
    create_topic(bs, topic, partitions=4)
    create_topic(bs, other, partitions=2)
    p = Producer(producer_conf(bs, **{"linger.ms": 50, "compression.type": "snappy"}))
    reports = []
    targets = [(topic, i) for i in range(4)] + [(other, i) for i in range(2)]
    for n in range(25):
        for t, part in targets:
            p.produce(t, b"%s/%d/%d" % (t.encode(), part, n), partition=part,
                      on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(30) == 0
    assert len(reports) == 150 and not any(reports)
    c = Consumer(consumer_conf(bs))
    seen: dict[tuple[str, int], list[tuple[int, bytes]]] = {tp: [] for tp in targets}
    try:
        c.assign([TopicPartition(t, part, 0) for t, part in targets])
        deadline = time.monotonic() + 20
        while sum(map(len, seen.values())) < 150 and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is not None and not msg.error():
                seen[(msg.topic(), msg.partition())].append((msg.offset(), msg.value()))
    finally:
        c.close()
    for (t, part), got in seen.items():
        assert got == [(n, b"%s/%d/%d" % (t.encode(), part, n)) for n in range(25)], (t, part)


def test_concurrent_producers_same_partition(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    n_threads, per_thread = 4, 200
    errors = []

    def work(tid: int):
        recs = [Rec(b"t%d" % tid, b"%d:%d" % (tid, i), (), None) for i in range(per_thread)]
        res = confluent_produce(bs, topic, recs, chunks=4, acks="all",
                                **{"max.in.flight.requests.per.connection": 1})
        errors.extend(r[0] for r in res if r[0] is not None)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    got = confluent_consume(bs, topic, n_threads * per_thread, timeout=30, extra_wait=0.5)
    assert [g.offset for g in got] == list(range(n_threads * per_thread))
    for tid in range(n_threads):
        mine = [g.value for g in got if g.key == b"t%d" % tid]
        assert mine == [b"%d:%d" % (tid, i) for i in range(per_thread)]


def test_timestamp_lookup_inside_a_compressed_batch(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    t0 = now_ms() - 20_000
    recs = [Rec(None, b"c%d" % i, (), t0 + i * 100) for i in range(20)]
    assert_delivered(confluent_produce(bs, topic, recs, **{"compression.type": "zstd",
                                                           "linger.ms": 100}))
    c = Consumer(consumer_conf(bs))
    try:
        for target, want in ((t0 + 50, 1), (t0 + 1000, 10), (t0 + 1901, -1), (t0 - 5, 0)):
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert tp.offset == want, (target, tp.offset, want)
    finally:
        c.close()


def test_empty_partition_offsets(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    assert watermarks(bs, topic) == (0, 0)
    c = Consumer(consumer_conf(bs))
    try:
        [tp] = c.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=10)
        assert tp.offset == OFFSET_END
    finally:
        c.close()


def test_min_insync_replicas_above_isr_refuses_acks_all(shared_broker, topic):
    """One broker, min.insync.replicas=2: acks=1 works, acks=all gets NOT_ENOUGH_REPLICAS
    and nothing is appended."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic, config={"min.insync.replicas": "2"})
    assert_delivered(confluent_produce(bs, topic, [Rec(None, b"one", (), None)], acks="1"))
    res = confluent_produce(bs, topic, [Rec(None, b"all", (), None)], acks="all",
                            **{"message.timeout.ms": 3000, "retries": 0})
    assert res[0][0] is not None, "acks=all accepted with ISR 1 < min.insync.replicas 2"
    assert res[0][0].code() in (KafkaError.NOT_ENOUGH_REPLICAS, KafkaError._MSG_TIMED_OUT), res
    assert watermarks(bs, topic) == (0, 1)


def test_clients_survive_a_broker_restart(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic)
    p = Producer(producer_conf(bs, acks="all", **{"message.timeout.ms": 30000}))
    reports = []
    p.produce(topic, b"before", partition=0, on_delivery=lambda e, m: reports.append(e))
    assert p.flush(15) == 0
    broker.restart()
    p.produce(topic, b"after", partition=0, on_delivery=lambda e, m: reports.append(e))
    assert p.flush(30) == 0
    assert reports == [None, None]
    assert [g.value for g in confluent_consume(bs, topic, 2)] == [b"before", b"after"]


def test_idle_consumer_does_not_make_the_broker_spin(broker, topic):
    """A consumer waiting at the end of a partition long-polls; the broker should be idle."""
    create_topic(broker.bootstrap, topic)

    def cpu_seconds() -> float:
        with open(f"/proc/{broker.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    c = Consumer(consumer_conf(broker.bootstrap))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        for _ in range(10):
            c.poll(0.1)
        before = cpu_seconds()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            c.poll(0.1)
        used = cpu_seconds() - before
    finally:
        c.close()
    assert used < 1.0, f"broker used {used:.2f}s CPU in 4s serving one idle consumer"
