"""Shared helpers for the integration tests: sample records, topic admin through
confluent-kafka's AdminClient, and produce/consume round trips with confluent-kafka.

Every call that waits is bounded by a timeout.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import KafkaAdminClient

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

# Kafka error codes used by the tests (protocol guide, "Error Codes").
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40


@dataclass(frozen=True)
class Rec:
    """A record as produced and as expected back."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int | None = None


@dataclass(frozen=True)
class Got:
    """A record as consumed."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = field(default=())
    timestamp: int | None = None
    timestamp_type: str | None = None

    def as_rec(self) -> Rec:
        return Rec(self.key, self.value, self.headers, self.timestamp)


def now_ms() -> int:
    return int(time.time() * 1000)


def unique_topic(prefix: str = "t") -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in prefix)[:60]
    return f"{safe}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.1,
               message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def sample_records(n: int, seed: int = 0, base_ts: int | None = None,
                   nulls: bool = True, null_header_values: bool = True) -> list[Rec]:
    """Deterministic records: keys, compressible and random values, headers, timestamps.

    With ``nulls`` a few records have a null key, a null value or an empty value.
    With ``null_header_values`` one header value is null (Kafka allows that).
    """
    rnd = random.Random(seed)
    base_ts = now_ms() - 60_000 if base_ts is None else base_ts
    out = []
    for i in range(n):
        key: bytes | None = f"key-{i:05d}".encode()
        kind = i % 4
        if kind == 0:
            value: bytes | None = (f"value {i} " * rnd.randint(1, 200)).encode()
        elif kind == 1:
            value = rnd.randbytes(rnd.randint(1, 3000))
        elif kind == 2:
            value = f"v{i}".encode()
        else:
            value = bytes([i % 256]) * rnd.randint(100, 5000)
        headers: list[tuple[str, bytes | None]] = []
        if i % 3 != 2:
            headers.append(("idx", str(i).encode()))
            headers.append(("trace", rnd.randbytes(8)))
        if i % 5 == 1:
            headers.append(("idx", b"duplicate-key-is-allowed"))
        if null_header_values and i == 4:
            headers.append(("null-value", None))
        if nulls:
            if i == 1:
                key = None
            elif i == 2:
                value = None
            elif i == 3:
                value = b""
        out.append(Rec(key, value, tuple(headers), base_ts + i * 10))
    return out


# --------------------------------------------------------------------- admin
def admin_client(bootstrap: str, **conf: object) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000, **conf})


def topic_ready(admin: AdminClient, topic: str, partitions: int | None = None) -> bool:
    md = admin.list_topics(topic=topic, timeout=5)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return False
    if partitions is not None and len(t.partitions) != partitions:
        return False
    return bool(t.partitions) and all(p.leader >= 0 and p.error is None
                                      for p in t.partitions.values())


def wait_for_topic(bootstrap: str, topic: str, partitions: int | None = None,
                   timeout: float = 10.0) -> None:
    admin = admin_client(bootstrap)
    wait_until(lambda: topic_ready(admin, topic, partitions), timeout,
               message=f"topic {topic} with {partitions} partitions in metadata")


def create_topic(bootstrap: str, topic: str, partitions: int = 1,
                 config: dict[str, str] | None = None, timeout: float = 15.0) -> str:
    """Create a topic with confluent-kafka's AdminClient and wait until it has leaders."""
    admin = admin_client(bootstrap)
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=timeout,
    )
    futures[topic].result(timeout=timeout)
    wait_for_topic(bootstrap, topic, partitions, timeout)
    return topic


def delete_topic(bootstrap: str, topic: str, timeout: float = 15.0) -> None:
    admin = admin_client(bootstrap)
    admin.delete_topics([topic], request_timeout=timeout)[topic].result(timeout=timeout)


# ------------------------------------------------------- confluent produce
def producer_conf(bootstrap: str, **conf: object) -> dict[str, object]:
    base: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": False,
        "linger.ms": 5,
        "message.timeout.ms": 20000,
        "socket.timeout.ms": 10000,
    }
    base.update(conf)
    return base


def confluent_produce(bootstrap: str, topic: str, records: Iterable[Rec], partition: int = 0,
                      chunks: int = 1, flush_timeout: float = 30.0,
                      **conf: object) -> list[tuple[KafkaError | None, int, int]]:
    """Produce in ``chunks`` flushes (so in several batches); returns (error, partition, offset)
    per record in produce order."""
    records = list(records)
    p = Producer(producer_conf(bootstrap, **conf))
    results: list[tuple[KafkaError | None, int, int] | None] = [None] * len(records)

    def report(i: int) -> Callable:
        def cb(err, msg):
            results[i] = (err, msg.partition(), msg.offset())
        return cb

    per_chunk = max(1, -(-len(records) // chunks))
    for start in range(0, len(records), per_chunk):
        for i in range(start, min(start + per_chunk, len(records))):
            r = records[i]
            kwargs: dict[str, object] = {"partition": partition, "on_delivery": report(i)}
            if r.key is not None:
                kwargs["key"] = r.key
            if r.value is not None:
                kwargs["value"] = r.value
            if r.headers:
                kwargs["headers"] = list(r.headers)
            if r.timestamp is not None:
                kwargs["timestamp"] = r.timestamp
            p.produce(topic, **kwargs)
            p.poll(0)
        remaining = p.flush(flush_timeout)
        assert remaining == 0, f"{remaining} messages still queued after {flush_timeout}s"
    assert all(r is not None for r in results), "missing delivery reports"
    return results  # type: ignore[return-value]


def assert_delivered(results: list[tuple[KafkaError | None, int, int]], first_offset: int = 0,
                     check_offsets: bool = True) -> None:
    errors = [(i, r[0]) for i, r in enumerate(results) if r[0] is not None]
    assert not errors, f"delivery errors: {errors[:5]}"
    if check_offsets:
        offsets = [r[2] for r in results]
        assert offsets == list(range(first_offset, first_offset + len(results))), offsets


# ------------------------------------------------------- confluent consume
def consumer_conf(bootstrap: str, **conf: object) -> dict[str, object]:
    base: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"it-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "socket.timeout.ms": 10000,
    }
    base.update(conf)
    return base


def _headers(raw) -> tuple[tuple[str, bytes | None], ...]:
    return tuple((k, v) for k, v in (raw or []))


def confluent_consume(bootstrap: str, topic: str, count: int, partition: int = 0,
                      start: int = 0, timeout: float = 20.0, extra_wait: float = 0.0,
                      **conf: object) -> list[Got]:
    """Read ``count`` records from ``start`` (assign, no group management)."""
    c = Consumer(consumer_conf(bootstrap, **conf))
    out: list[Got] = []
    try:
        c.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            out.append(_got(msg))
        extra_deadline = time.monotonic() + extra_wait
        while time.monotonic() < extra_deadline:
            msg = c.poll(0.2)
            if msg is not None and not msg.error():
                out.append(_got(msg))
    finally:
        c.close()
    return out


def _got(msg) -> Got:
    ts_type, ts = msg.timestamp()
    names = {0: None, 1: "create", 2: "log_append"}
    return Got(msg.offset(), msg.key(), msg.value(), _headers(msg.headers()), ts,
               names.get(ts_type, str(ts_type)))


def read_to_end(bootstrap: str, topic: str, partitions: int = 1, isolation: str = "read_committed",
                timeout: float = 30.0, must_reach_end: bool = True) -> list[bytes]:
    """Every value of partitions ``0..partitions-1`` from offset 0 up to the end a
    consumer sees (with read_committed, the last stable offset), by assignment under a
    fresh group. With ``must_reach_end`` it fails if some partition's end was not
    reached in ``timeout``; without, it returns what it read (for polling loops)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.monotonic_ns()}",
                  "isolation.level": isolation, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[bytes] = []
    eof: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(eof) < partitions and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                eof.add(m.partition())
            else:
                out.append(m.value())
    finally:
        c.close()
    if must_reach_end:
        assert len(eof) == partitions, f"{isolation} never reached the end of {topic} (LSO stuck?)"
    return out


def describe_transaction(bootstrap: str, txn_id: str, request_timeout_ms: int = 10000):
    """DescribeTransactions of one id through kafka-python's admin client (confluent-kafka
    has no such call): its state, producer id and epoch, coordinator, partitions."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms)
    try:
        return admin.describe_transactions([txn_id])[txn_id]
    finally:
        admin.close()


def watermarks(bootstrap: str, topic: str, partition: int = 0, timeout: float = 10.0, **conf: object) -> tuple[int, int]:
    """(low, high) as a consumer sees them: the high one is the last stable offset
    unless ``conf`` sets ``isolation.level`` to read_uncommitted (librdkafka's default
    is read_committed)."""
    c = Consumer(consumer_conf(bootstrap, **conf))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    finally:
        c.close()


def assert_records(got: list[Got], expected: list[Rec], first_offset: int = 0,
                   timestamps: bool = True) -> None:
    """Exactly the expected records, in order, at consecutive offsets."""
    assert len(got) == len(expected), f"got {len(got)} records, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.offset == first_offset + i, f"record {i}: offset {g.offset}"
        assert g.key == e.key, f"record {i}: key {g.key!r} != {e.key!r}"
        assert g.value == e.value, f"record {i} (offset {g.offset}): value differs " \
            f"(len {None if g.value is None else len(g.value)} vs " \
            f"{None if e.value is None else len(e.value)})"
        assert g.headers == e.headers, f"record {i}: headers {g.headers!r} != {e.headers!r}"
        if timestamps and e.timestamp is not None:
            assert g.timestamp == e.timestamp, f"record {i}: timestamp {g.timestamp} != {e.timestamp}"


def roundtrip_ok(bootstrap: str, topic: str | None = None, timeout: float = 20.0) -> None:
    """A real client can still create a topic, produce and consume on this broker."""
    topic = topic or unique_topic("alive")
    create_topic(bootstrap, topic)
    recs = sample_records(5, seed=99)
    assert_delivered(confluent_produce(bootstrap, topic, recs, acks="all"))
    assert_records(confluent_consume(bootstrap, topic, len(recs), timeout=timeout), recs)
