"""aiokafka against a real Moldau broker. Each test runs its own event loop with
``asyncio.run`` and bounds every await with ``asyncio.wait_for``."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError

from .kafka_helpers import (
    CODECS,
    Got,
    Rec,
    assert_records,
    create_topic,
    now_ms,
    sample_records,
    unique_topic,
    watermarks,
)

pytestmark = pytest.mark.timeout(90)


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def produce(bootstrap: str, topic: str, records: list[Rec], partition: int = 0,
                  chunks: int = 1, **conf) -> list:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=15000,
                         linger_ms=5, **conf)
    await asyncio.wait_for(p.start(), 15)
    try:
        metas = []
        per_chunk = max(1, -(-len(records) // chunks))
        for start in range(0, len(records), per_chunk):
            futures = [
                await p.send(topic, value=r.value, key=r.key, partition=partition,
                             timestamp_ms=r.timestamp, headers=list(r.headers) or None)
                for r in records[start:start + per_chunk]
            ]
            metas += await asyncio.wait_for(asyncio.gather(*futures), 30)
        return metas
    finally:
        await asyncio.wait_for(p.stop(), 15)


async def consume(bootstrap: str, topic: str, count: int, partition: int = 0, start: int = 0,
                  timeout: float = 20.0, extra_wait: float = 0.0, **conf) -> list[Got]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", request_timeout_ms=15000,
                         fetch_max_wait_ms=200, **conf)
    await asyncio.wait_for(c.start(), 15)
    tp = TopicPartition(topic, partition)
    out: list[Got] = []
    try:
        c.assign([tp])
        c.seek(tp, start)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < count and loop.time() < deadline:
            batches = await c.getmany(tp, timeout_ms=200)
            out.extend(_got(r) for recs in batches.values() for r in recs)
        extra = loop.time() + extra_wait
        while loop.time() < extra:
            batches = await c.getmany(tp, timeout_ms=100)
            out.extend(_got(r) for recs in batches.values() for r in recs)
    finally:
        await asyncio.wait_for(c.stop(), 15)
    return out


def _got(r) -> Got:
    return Got(r.offset, r.key, r.value, tuple((k, v) for k, v in (r.headers or ())),
               r.timestamp, {0: "create", 1: "log_append"}.get(r.timestamp_type))


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_every_codec(shared_broker, topic, codec):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(60, seed=21, null_header_values=False)

    async def main():
        metas = await produce(bs, topic, recs, chunks=3, acks="all",
                              compression_type=None if codec == "none" else codec)
        assert [m.offset for m in metas] == list(range(len(recs)))
        return await consume(bs, topic, len(recs), extra_wait=0.5)

    got = run(main())
    assert_records(got, recs)
    assert all(g.timestamp_type == "create" for g in got)


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(shared_broker, topic, acks):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(30, seed=22, null_header_values=False)

    async def main():
        metas = await produce(bs, topic, recs, chunks=3, acks=acks)
        if acks != 0:
            assert [m.offset for m in metas] == list(range(len(recs)))
        return await consume(bs, topic, len(recs), extra_wait=0.3)

    assert_records(run(main()), recs)


def test_send_batch_api(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=bs, request_timeout_ms=15000,
                             compression_type="gzip")
        await asyncio.wait_for(p.start(), 15)
        try:
            batch = p.create_batch()
            for i in range(10):
                assert batch.append(key=b"k%d" % i, value=b"v%d" % i, timestamp=None) is not None
            fut = await p.send_batch(batch, topic, partition=0)
            meta = await asyncio.wait_for(fut, 30)
        finally:
            await asyncio.wait_for(p.stop(), 15)
        return meta, await consume(bs, topic, 10)

    meta, got = run(main())
    assert meta.offset == 0
    assert [(g.offset, g.key, g.value) for g in got] == [
        (i, b"k%d" % i, b"v%d" % i) for i in range(10)
    ]


def test_offsets_for_times(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    t0 = now_ms() - 500_000
    recs = [Rec(b"k", b"v%d" % i, (), t0 + i * 100) for i in range(6)]

    async def main():
        await produce(bs, topic, recs, chunks=2)
        c = AIOKafkaConsumer(bootstrap_servers=bs, group_id=None, request_timeout_ms=15000)
        await asyncio.wait_for(c.start(), 15)
        tp = TopicPartition(topic, 0)
        try:
            a = (await c.offsets_for_times({tp: t0 + 150}))[tp]
            b = (await c.offsets_for_times({tp: t0 + 501}))[tp]
            ends = await c.end_offsets([tp])
            begins = await c.beginning_offsets([tp])
        finally:
            await asyncio.wait_for(c.stop(), 15)
        return a, b, begins[tp], ends[tp]

    a, b, begin, end = run(main())
    assert (a.offset, a.timestamp) == (2, t0 + 200)
    assert b is None
    assert (begin, end) == (0, 6)


def test_message_size_limit(make_broker):
    limit = 4096
    b = make_broker(**{"message.max.bytes": limit})
    topic = unique_topic("aio-size")
    create_topic(b.bootstrap, topic)

    async def main():
        await produce(b.bootstrap, topic, [Rec(None, b"u" * (limit - 200), (), None)],
                      max_request_size=10_000_000)
        with pytest.raises(MessageSizeTooLargeError):
            await produce(b.bootstrap, topic, [Rec(None, b"o" * (limit + 100), (), None)],
                          max_request_size=10_000_000)

    run(main())
    assert watermarks(b.bootstrap, topic) == (0, 1)


def test_idempotent_producer(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(40, seed=23, null_header_values=False)

    async def main():
        await produce(bs, topic, recs, chunks=4, enable_idempotence=True,
                      compression_type="lz4")
        return await consume(bs, topic, len(recs), extra_wait=0.3)

    assert_records(run(main()), recs)


def test_log_append_time_with_crc_checks(shared_broker, topic):
    """The broker rewrites LogAppendTime batches: their CRC must be recomputed."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic, config={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    recs = [Rec(b"k%d" % i, b"v%d" % i, (), 1_000) for i in range(10)]

    async def main():
        await produce(bs, topic, recs, chunks=2, compression_type="gzip")
        return await consume(bs, topic, len(recs), check_crcs=True)

    got = run(main())
    assert [g.value for g in got] == [r.value for r in recs]
    assert all(g.timestamp_type == "log_append" and g.timestamp >= before - 1000 for g in got)
