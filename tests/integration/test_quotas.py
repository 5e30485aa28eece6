"""Client quotas with real clients: producers and consumers slowed to their byte rates
(Kafka's sampled rate: a burst of ``quota.window.num - 1`` windows, then the quota),
others not; the quota APIs with user, client-id and ip entities and Kafka's validation.

No Python client speaks AlterClientQuotas/DescribeClientQuotas (confluent-kafka 2.12
and kafka-python have no such call), so they are sent by hand (raw_kafka, v0). One
broker with ``quota.window.num=3`` so rates settle within seconds. Cost: ~25 s (a
producer and a consumer each run 6 s under their quota).
"""

from __future__ import annotations

import struct
import time

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer

from . import raw_kafka as raw
from .conftest import _dispose, _new_broker
from .kafka_helpers import create_topic, producer_conf

API_DESCRIBE_CLIENT_QUOTAS = 48
API_ALTER_CLIENT_QUOTAS = 49
SAMPLES = 3  # quota.window.num: 2 s of burst, then the quota (the default 11 takes 10 s)
PRODUCE_RATE = 200_000  # bytes per second
CONSUME_RATE = 300_000
RECORD = 1000
RUN_S = 6.0
INVALID_REQUEST = 42


@pytest.fixture(scope="module")
def qbroker():
    b = _new_broker({"quota.window.num": SAMPLES}, "quotas")
    yield b
    _dispose(b)


def _entity(pairs: list[tuple[str, str | None]]) -> bytes:
    return raw.i32(len(pairs)) + b"".join(raw.string(t) + raw.string(n) for t, n in pairs)


def alter_quotas(bootstrap: str, pairs: list[tuple[str, str | None]], ops: dict[str, float | None]) -> list[int]:
    """AlterClientQuotas v0 for one entity; returns the error codes of the answer."""
    body = raw.i32(1) + _entity(pairs) + raw.i32(len(ops))
    for key, value in ops.items():
        body += raw.string(key) + struct.pack(">d", value or 0.0) + raw.i8(1 if value is None else 0)
    body += raw.i8(0)  # validate_only
    with raw.connect(bootstrap) as sock:
        sock.sendall(raw.request(API_ALTER_CLIENT_QUOTAS, 0, 7, body))
        answer = raw.read_response(sock)
    assert answer is not None
    reader = raw.Reader(answer[1])
    reader.i32()  # throttle_time_ms
    codes = []
    for _ in range(reader.i32()):
        codes.append(reader.i16())
        reader.string()
        for _ in range(reader.i32()):
            reader.string(), reader.string()
    return codes


def describe_quotas(
    bootstrap: str, entity_type: str = "client-id", match_type: int = 2, strict: bool = False
) -> tuple[int, list[tuple[list[tuple[str, str | None]], dict[str, float]]]]:
    """DescribeClientQuotas v0 with one filter component (by default: every entity with
    a client id, match type 2 = any specified)."""
    return describe_filter(bootstrap, [(entity_type, match_type, None)], strict)


def describe_filter(
    bootstrap: str, components: list[tuple[str, int, str | None]], strict: bool = False
) -> tuple[int, list[tuple[list[tuple[str, str | None]], dict[str, float]]]]:
    """DescribeClientQuotas v0 with the given (entity type, match type, match) filter."""
    body = raw.i32(len(components))
    for entity_type, match_type, match in components:
        body += raw.string(entity_type) + raw.i8(match_type) + raw.string(match)
    body += raw.i8(int(strict))
    with raw.connect(bootstrap) as sock:
        sock.sendall(raw.request(API_DESCRIBE_CLIENT_QUOTAS, 0, 8, body))
        answer = raw.read_response(sock)
    assert answer is not None
    reader = raw.Reader(answer[1])
    reader.i32()
    code = reader.i16()
    reader.string()
    entries = []
    for _ in range(max(0, reader.i32())):
        entity = [(reader.string(), reader.string()) for _ in range(reader.i32())]
        values = {}
        for _ in range(reader.i32()):
            key = reader.string()
            (values[key],) = struct.unpack(">d", reader.take(8))
        entries.append((entity, values))
    return code, entries


def _produce_for(
    bootstrap: str, topic: str, client_id: str, seconds: float, limit: int | None = None
) -> tuple[list[float], list[int]]:
    """Produce 1 kB records as fast as the client goes for ``seconds`` (or until
    ``limit`` records are delivered); (the delivery times since the start, the
    throttle times librdkafka reported)."""
    throttles: list[int] = []
    p = Producer(producer_conf(bootstrap, **{
        "client.id": client_id, "linger.ms": 5, "batch.size": 16384,
        "queue.buffering.max.messages": 2000, "statistics.interval.ms": 0,
        "throttle_cb": lambda event: throttles.append(int(event.throttle_time * 1000)),
    }))
    payload = b"x" * RECORD
    delivered: list[float] = []
    start = time.monotonic()

    def done(err, msg) -> None:
        if err is None:
            delivered.append(time.monotonic() - start)

    while time.monotonic() - start < seconds and (limit is None or len(delivered) < limit):
        try:
            p.produce(topic, payload, on_delivery=done)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    p.purge()
    p.flush(30)
    return [t for t in delivered if t <= seconds], throttles


def _rate_between(times: list[float], lo: float, hi: float, size: int = RECORD) -> float:
    return sum(1 for t in times if lo <= t < hi) * size / (hi - lo)


def test_quota_apis_take_user_client_id_and_ip_entities_as_kafka_validates(qbroker) -> None:
    b = qbroker.bootstrap
    assert alter_quotas(b, [("client-id", "x"), ("client-id", "y")], {"producer_byte_rate": 1}) == [INVALID_REQUEST]
    assert alter_quotas(b, [("client-id", "x")], {"no_such_quota": 1}) == [INVALID_REQUEST]
    assert alter_quotas(b, [("client-id", "x")], {"producer_byte_rate": 1.5}) == [INVALID_REQUEST]  # a LONG
    assert alter_quotas(b, [("client-id", "x")], {"producer_byte_rate": -1}) == [INVALID_REQUEST]
    assert alter_quotas(b, [("client-id", "")], {"producer_byte_rate": 1}) == [INVALID_REQUEST]
    # ip: alone, an address (or the default), only connection_creation_rate, an INT
    assert alter_quotas(b, [("ip", "127.0.0.1"), ("user", "alice")], {"connection_creation_rate": 5}) == [INVALID_REQUEST]
    assert alter_quotas(b, [("ip", "not-an-ip")], {"connection_creation_rate": 5}) == [INVALID_REQUEST]
    assert alter_quotas(b, [("ip", "10.0.0.300")], {"connection_creation_rate": 5}) == [INVALID_REQUEST]
    assert alter_quotas(b, [("ip", "10.1.2.3")], {"producer_byte_rate": 5}) == [INVALID_REQUEST]
    assert alter_quotas(b, [("client-id", "x")], {"connection_creation_rate": 5}) == [INVALID_REQUEST]
    assert alter_quotas(b, [("ip", "10.1.2.3")], {"connection_creation_rate": 2.5}) == [INVALID_REQUEST]
    assert alter_quotas(b, [("ip", "10.1.2.3")], {"connection_creation_rate": 2**31}) == [INVALID_REQUEST]
    assert describe_quotas(b, "ip") == (0, [])  # nothing refused was stored

    assert alter_quotas(b, [("ip", "10.1.2.3")], {"connection_creation_rate": 50}) == [0]
    assert alter_quotas(b, [("ip", "fd00::7")], {"connection_creation_rate": 40}) == [0]
    assert alter_quotas(b, [("ip", None)], {"connection_creation_rate": 1000}) == [0]
    assert alter_quotas(b, [("user", "alice"), ("client-id", None)], {"consumer_byte_rate": 9000}) == [0]
    code, entries = describe_quotas(b, "ip")
    assert code == 0 and sorted(entries, key=str) == sorted([
        ([("ip", "10.1.2.3")], {"connection_creation_rate": 50.0}),
        ([("ip", "fd00::7")], {"connection_creation_rate": 40.0}),
        ([("ip", None)], {"connection_creation_rate": 1000.0}),
    ], key=str)
    assert describe_filter(b, [("ip", 1, None)]) == (0, [([("ip", None)], {"connection_creation_rate": 1000.0})])
    assert describe_filter(b, [("ip", 0, "fd00::7")]) == (0, [([("ip", "fd00::7")], {"connection_creation_rate": 40.0})])
    assert describe_filter(b, [("user", 0, "alice")]) == (
        0, [([("client-id", None), ("user", "alice")], {"consumer_byte_rate": 9000.0})])
    assert describe_filter(b, [("ip", 2, None), ("user", 2, None)])[0] == INVALID_REQUEST
    assert describe_filter(b, [("group", 2, None)])[0] == 35  # UNSUPPORTED_VERSION, as Kafka
    # removing the last key removes the entity
    for pairs in ([("ip", "10.1.2.3")], [("ip", "fd00::7")], [("ip", None)]):
        assert alter_quotas(b, pairs, {"connection_creation_rate": None}) == [0]
    assert alter_quotas(b, [("user", "alice"), ("client-id", None)], {"consumer_byte_rate": None}) == [0]
    assert describe_quotas(b, "ip") == (0, []) and describe_quotas(b, "user") == (0, [])


def test_a_producer_converges_to_its_quota_and_others_are_not_slowed(qbroker, topic) -> None:
    b = qbroker.bootstrap
    create_topic(b, topic)
    assert alter_quotas(b, [("client-id", "slow")], {"producer_byte_rate": PRODUCE_RATE}) == [0]
    code, entries = describe_quotas(b)
    assert code == 0 and entries == [([("client-id", "slow")], {"producer_byte_rate": float(PRODUCE_RATE)})]

    times, throttles = _produce_for(b, topic, "slow", RUN_S)
    total = len(times) * RECORD
    burst = _rate_between(times, 0, 2) * 2
    tail = _rate_between(times, 3, RUN_S)
    print(f"throttled at {PRODUCE_RATE} B/s: {total} B in {RUN_S} s, {burst:.0f} B in the first 2 s, "
          f"{tail:.0f} B/s from 3 s on; throttle times {min(throttles, default=0)}-{max(throttles, default=0)} ms "
          f"({len(throttles)} reported)")
    assert throttles and max(throttles) > 0, "librdkafka saw no throttle_time_ms"
    # (SAMPLES - 1) windows of burst, then the quota: about 2 + 4 windows' worth in 6 s
    assert total <= PRODUCE_RATE * (RUN_S + SAMPLES) * 1.25, total
    assert 0.5 * PRODUCE_RATE <= tail <= 1.35 * PRODUCE_RATE, f"steady rate {tail:.0f} B/s, quota {PRODUCE_RATE}"

    # 2 MB take ~9 s under the quota
    fast_times, fast_throttles = _produce_for(b, topic, "fast", 10, limit=2000)
    print(f"another client id: 2 MB in {fast_times[-1]:.2f} s")
    assert len(fast_times) >= 2000 and fast_times[-1] < 3.0 and not fast_throttles

    # removing the quota lifts it (and it is gone from DescribeClientQuotas)
    assert alter_quotas(b, [("client-id", "slow")], {"producer_byte_rate": None}) == [0]
    assert describe_quotas(b) == (0, [])
    lifted, lifted_throttles = _produce_for(b, topic, "slow", 10, limit=2000)
    assert len(lifted) >= 2000 and lifted[-1] < 3.0 and not lifted_throttles


def test_a_consumer_converges_to_its_quota_and_sees_the_throttle(qbroker, topic) -> None:
    b = qbroker.bootstrap
    create_topic(b, topic)
    # 4 MB to read, more than 6 s at the quota allow
    times, _ = _produce_for(b, topic, "filler", 20, limit=4000)
    assert len(times) >= 4000, len(times)
    assert alter_quotas(b, [("client-id", "reader")], {"consumer_byte_rate": CONSUME_RATE}) == [0]
    consumer = KafkaConsumer(topic, bootstrap_servers=b, client_id="reader", group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100,
                             max_partition_fetch_bytes=65536)
    got: list[float] = []
    try:
        start = time.monotonic()
        while time.monotonic() - start < RUN_S:
            for records in consumer.poll(timeout_ms=100).values():
                now = time.monotonic() - start
                got.extend(now for _ in records)
        metrics = consumer.metrics()
    finally:
        consumer.close()
    throttle_max = max((v for group in metrics.values() for k, v in group.items() if "throttle-time-max" in k),
                       default=0)
    tail = _rate_between(got, 3, RUN_S)
    print(f"consumer at {CONSUME_RATE} B/s: {len(got) * RECORD} B in {RUN_S} s, {tail:.0f} B/s from 3 s on, "
          f"throttle-time-max {throttle_max} ms")
    assert throttle_max and throttle_max > 0, "kafka-python saw no throttle_time_ms"
    assert len(got) * RECORD <= CONSUME_RATE * (RUN_S + SAMPLES) * 1.25
    assert 0.5 * CONSUME_RATE <= tail <= 1.35 * CONSUME_RATE, f"steady rate {tail:.0f} B/s, quota {CONSUME_RATE}"


def _metadata_throttle(sock, correlation_id: int, client_id: str) -> tuple[int, float]:
    """One Metadata v4 (all topics) on ``sock``: (throttle_time_ms, seconds to answer)."""
    start = time.monotonic()
    sock.sendall(raw.request(raw.API_METADATA, 4, correlation_id, raw.i32(-1) + raw.i8(0), client_id=client_id))
    answer = raw.read_response(sock)
    assert answer is not None and answer[0] == correlation_id
    return raw.Reader(answer[1]).i32(), time.monotonic() - start


def test_request_percentage_throttles_and_mutes_that_client_id(qbroker) -> None:
    broker = qbroker
    # 0.001 % of a thread: over it from the first Metadata (~100 us of handler time);
    # the throttle is capped at one window (1 s), as Kafka caps request quotas
    assert alter_quotas(broker.bootstrap, [("client-id", "busy")], {"request_percentage": 0.001}) == [0]
    with raw.connect(broker.bootstrap) as busy, raw.connect(broker.bootstrap) as idle:
        throttles = [_metadata_throttle(busy, i, "busy")[0] for i in range(1, 4)]
        assert 0 < max(throttles) <= 1000, throttles
        # the connection was muted for the throttle time: the next answer waits for it
        last_throttle = throttles[-1]
        _, waited = _metadata_throttle(busy, 9, "busy")
        assert waited >= last_throttle / 1000 * 0.8, (waited, throttles)
        assert [_metadata_throttle(idle, i, "other")[0] for i in range(1, 4)] == [0, 0, 0]
