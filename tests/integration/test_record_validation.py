"""Record validation with real clients: malformed batches are refused, nothing is stored.

Each kind of damaged batch is sent raw (a CRC-correct batch whose records are not) to a
broker running the C walk and to one forced onto the pure-Python walk
(``MOLDAU_PURE_PYTHON=1``); both must answer CORRUPT_MESSAGE or INVALID_RECORD, append
nothing, log no traceback, and leave the partition readable by confluent-kafka,
kafka-python and aiokafka, with ListOffsets by timestamp still answering.
"""

from __future__ import annotations

import os

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from tests.records.builders import batch_of, record_bytes

from moldau.records import Compression, compress
from moldau.records.batch import _crc_of

from . import raw_kafka as raw
from .conftest import _dispose, _new_broker
from .kafka_helpers import (
    Rec,
    assert_delivered,
    confluent_consume,
    confluent_produce,
    consumer_conf,
    create_topic,
    now_ms,
    unique_topic,
    watermarks,
)
from .test_aiokafka import consume as aiokafka_consume
from .test_aiokafka import run as aiokafka_run
from .test_kafka_python import consume as kafka_python_consume

pytestmark = pytest.mark.timeout(120)

CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
INVALID_TIMESTAMP = 32
INVALID_RECORD = 87


@pytest.fixture(scope="module", params=["c", "python"])
def walk_broker(request: pytest.FixtureRequest):
    """A broker per implementation of the record walk (the env var is read at import)."""
    saved = os.environ.get("MOLDAU_PURE_PYTHON")
    os.environ["MOLDAU_PURE_PYTHON"] = "1" if request.param == "python" else "0"
    try:
        b = _new_broker({}, f"walk-{request.param}")
    finally:
        if saved is None:
            del os.environ["MOLDAU_PURE_PYTHON"]
        else:
            os.environ["MOLDAU_PURE_PYTHON"] = saved
    yield b
    _dispose(b)


def _records(n: int, *, deltas: list[int] | None = None, value_size: int = 20) -> bytes:
    deltas = list(range(n)) if deltas is None else deltas
    return b"".join(
        record_bytes(d, b"k%d" % d, b"v%d-" % d + b"x" * value_size, timestamp_delta=i)
        for i, d in enumerate(deltas)
    )


def damaged(kind: str, ts: int) -> tuple[bytes, int]:
    """A CRC-correct batch with records that are not acceptable, and the expected error."""
    lz4 = Compression.LZ4
    kinds: dict[str, tuple[bytearray, int]] = {
        "count-one-too-high": (batch_of(_records(3), 4, base_timestamp=ts), INVALID_RECORD),
        "count-one-too-low": (batch_of(_records(3), 2, base_timestamp=ts), INVALID_RECORD),
        "bad-varint": (batch_of(_records(1) + b"\xff" * 11, 2, base_timestamp=ts), INVALID_RECORD),
        "record-length-mismatch": (
            batch_of(record_bytes(0, raw_body=b"\x00\x00\x00\x02k\x02v\x00\x00"), 1, base_timestamp=ts),
            INVALID_RECORD,
        ),
        "trailing-bytes": (batch_of(_records(2) + b"\x00\x00", 2, base_timestamp=ts), INVALID_RECORD),
        "shuffled-offset-deltas": (
            batch_of(_records(3, deltas=[1, 0, 2]), 3, base_timestamp=ts), INVALID_RECORD
        ),
        "shuffled-offset-deltas-lz4": (
            batch_of(_records(3, deltas=[0, 2, 1]), 3, codec=lz4, base_timestamp=ts),
            INVALID_RECORD,
        ),
        "transactional-without-producer-id": (
            batch_of(_records(2), 2, attributes=0x10, base_timestamp=ts), INVALID_RECORD
        ),
    }
    if kind == "garbage-lz4-payload":
        buf = batch_of(b"\x04\x22\x4d\x18garbage, not an lz4 frame" * 4, 3, base_timestamp=ts)
        buf[22] |= int(lz4)
        buf[17:21] = _crc_of(memoryview(buf), 21, len(buf)).to_bytes(4, "big")
        return bytes(buf), CORRUPT_MESSAGE
    buf, code = kinds[kind]
    return bytes(buf), code


KINDS = [
    "count-one-too-high",
    "count-one-too-low",
    "bad-varint",
    "record-length-mismatch",
    "trailing-bytes",
    "shuffled-offset-deltas",
    "shuffled-offset-deltas-lz4",
    "transactional-without-producer-id",
    "garbage-lz4-payload",
]


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_batch_is_refused_and_nothing_appended(walk_broker, kind: str) -> None:
    bs = walk_broker.bootstrap
    topic = create_topic(bs, unique_topic(kind))
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"before")]))
    log_mark = walk_broker.log_size()
    batch, expected = damaged(kind, now_ms())
    error, base = raw.raw_produce(bs, topic, 0, batch)
    assert (error, base) == (expected, -1)
    error, base, record_errors, message = raw.raw_produce_v8(bs, topic, 0, batch)
    assert (error, base, record_errors) == (expected, -1, [])
    assert message, "Produce v8 answers carry the reason"
    assert watermarks(bs, topic) == (0, 1), "a refused batch changed the log"
    assert "Traceback" not in walk_broker.log_text(log_mark)


def test_partition_stays_readable_by_every_client(walk_broker) -> None:
    bs = walk_broker.bootstrap
    topic = create_topic(bs, unique_topic("readable"))
    t0 = now_ms() - 60_000
    assert_delivered(confluent_produce(bs, topic, [Rec(b"a", b"first", (), t0)]))
    for kind in KINDS:
        error, _ = raw.raw_produce(bs, topic, 0, damaged(kind, t0 + 1_000)[0])
        assert error in (CORRUPT_MESSAGE, INVALID_RECORD), (kind, error)
    # a sound batch whose maxTimestamp lies (below its baseTimestamp): accepted, and its
    # maxTimestamp corrected as Kafka does, so ListOffsets by timestamp finds its records
    payload = record_bytes(0, b"b", b"second", timestamp_delta=0) + record_bytes(
        1, b"c", b"third", timestamp_delta=2_000
    )
    lying = batch_of(payload, 2, base_timestamp=t0 + 10_000, max_timestamp=t0)
    assert raw.raw_produce(bs, topic, 0, bytes(lying)) == (0, 1)
    assert_delivered(confluent_produce(bs, topic, [Rec(b"d", b"fourth", (), t0 + 20_000)]), first_offset=3)

    expected = [
        (0, b"a", b"first", t0),
        (1, b"b", b"second", t0 + 10_000),
        (2, b"c", b"third", t0 + 12_000),
        (3, b"d", b"fourth", t0 + 20_000),
    ]
    for name, got in (
        ("confluent-kafka", confluent_consume(bs, topic, 4, extra_wait=0.5)),
        ("kafka-python", kafka_python_consume(bs, topic, 4, extra_wait=0.5)),
        ("aiokafka", aiokafka_run(aiokafka_consume(bs, topic, 4, extra_wait=0.5))),
    ):
        assert [(g.offset, g.key, g.value, g.timestamp) for g in got] == expected, name

    c = Consumer(consumer_conf(bs))
    try:
        for target, offset in ((t0, 0), (t0 + 11_000, 2), (t0 + 15_000, 3), (t0 + 99_000, -1)):
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert tp.error is None and tp.offset == offset, (target, tp)
    finally:
        c.close()


def _keyless_batch(count: int, keyless: set[int]) -> bytes:
    payload = b"".join(
        record_bytes(i, None if i in keyless else b"key-%d" % i, b"value-%d" % i) for i in range(count)
    )
    return bytes(batch_of(payload, count, base_timestamp=now_ms()))


def test_keyless_records_to_a_compacted_topic_get_record_errors(walk_broker) -> None:
    bs = walk_broker.bootstrap
    topic = create_topic(bs, unique_topic("compacted"), config={"cleanup.policy": "compact"})
    keyless = {0, 7, 13, 21, 34, 55, 56, 57, 89, 99}
    error, base, record_errors, message = raw.raw_produce_v8(bs, topic, 0, _keyless_batch(100, keyless))
    assert (error, base) == (INVALID_RECORD, -1)
    assert [i for i, _ in record_errors] == sorted(keyless)
    assert {m for _, m in record_errors} == {
        f"Compacted topic cannot accept message without key in topic partition {topic}-0."
    }
    assert message is not None and message.startswith(
        "One or more records have been rejected due to 10 record errors"
    )
    assert raw.raw_produce(bs, topic, 0, _keyless_batch(5, {2}))[0] == INVALID_RECORD  # v3: code only
    assert watermarks(bs, topic) == (0, 0)
    assert raw.raw_produce_v8(bs, topic, 0, _keyless_batch(5, set()))[:3] == (0, 0, [])


def test_librdkafka_fails_keyless_records_alone(walk_broker) -> None:
    """librdkafka's test 0011: 100 records, 10 keyless, one batch, to a compacted topic."""
    bs = walk_broker.bootstrap
    topic = create_topic(bs, unique_topic("rdkafka-keyless"), config={"cleanup.policy": "compact"})
    keyless = set(range(5, 100, 10))
    records = [Rec(None if i in keyless else b"k%d" % i, b"v%d" % i) for i in range(100)]
    results = confluent_produce(bs, topic, records, **{"linger.ms": 200, "retries": 0})
    for i, (err, _, _) in enumerate(results):
        assert err is not None, f"record {i} was delivered"
        if i in keyless:  # its own error: librdkafka read record_errors' batch_index
            assert err.code() == KafkaError.INVALID_RECORD, (i, err)
        else:  # librdkafka's "different record" error for the rest of the batch
            assert err.code() == KafkaError._INVALID_DIFFERENT_RECORD, (i, err)
    assert watermarks(bs, topic) == (0, 0)


@pytest.mark.parametrize("target", ["gzip", "zstd", "uncompressed"])
@pytest.mark.parametrize("source", [Compression.NONE, Compression.SNAPPY])
def test_topic_compression_type_refuses_shuffled_offset_deltas(
    walk_broker, target: str, source: Compression
) -> None:
    bs = walk_broker.bootstrap
    topic = create_topic(bs, unique_topic(f"ct-{target}"), config={"compression.type": target})
    log_mark = walk_broker.log_size()
    batch = batch_of(_records(3, deltas=[2, 0, 1]), 3, codec=source, base_timestamp=now_ms())
    error, base, _, message = raw.raw_produce_v8(bs, topic, 0, bytes(batch))
    assert (error, base) == (INVALID_RECORD, -1), message
    assert "offset delta" in (message or "")
    assert watermarks(bs, topic) == (0, 0)
    assert "Traceback" not in walk_broker.log_text(log_mark)
    # the broker keeps serving: a good batch is recompressed and stored
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"v")]))
    assert [g.value for g in confluent_consume(bs, topic, 1)] == [b"v"]


def test_zstd_bomb_is_refused_as_too_large(walk_broker) -> None:
    """A few KB of zstd whose records would expand past the 64 MiB bound: MESSAGE_TOO_LARGE."""
    bs = walk_broker.bootstrap
    topic = create_topic(bs, unique_topic("bomb"))
    one = record_bytes(0, b"k", bytes(1 << 16))
    count = 1100  # 1100 records of 64 KiB: about 69 MiB decompressed
    bomb = bytearray(batch_of(compress(Compression.ZSTD, one * count), count, base_timestamp=now_ms()))
    bomb[22] |= int(Compression.ZSTD)
    bomb[17:21] = _crc_of(memoryview(bomb), 21, len(bomb)).to_bytes(4, "big")
    assert len(bomb) < 1 << 20  # within message.max.bytes: only the bound stops it
    error, base, _, message = raw.raw_produce_v8(bs, topic, 0, bytes(bomb))
    assert (error, base) == (MESSAGE_TOO_LARGE, -1), message
    assert watermarks(bs, topic) == (0, 0)
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"v")]))


def test_timestamps_out_of_range_get_record_errors(walk_broker) -> None:
    """message.timestamp.after.max.ms: each record too far ahead is named (INVALID_TIMESTAMP)."""
    bs = walk_broker.bootstrap
    topic = create_topic(
        bs, unique_topic("ts-bounds"), config={"message.timestamp.after.max.ms": "60000"}
    )
    ts = now_ms()
    deltas = [0, 3_600_000, 1, 7_200_000, 2]  # records 1 and 3 are hours ahead
    payload = b"".join(record_bytes(i, b"k%d" % i, b"v", timestamp_delta=d) for i, d in enumerate(deltas))
    batch = bytes(batch_of(payload, 5, base_timestamp=ts, max_timestamp=ts + 7_200_000))
    error, base, record_errors, message = raw.raw_produce_v8(bs, topic, 0, batch)
    assert (error, base) == (INVALID_TIMESTAMP, -1)
    assert [i for i, _ in record_errors] == [1, 3]
    assert all(f"of message with offset {i} is out of range" in m for i, m in record_errors)
    assert message == "One or more records have been rejected due to invalid timestamp"
    assert watermarks(bs, topic) == (0, 0)
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"now")]))
