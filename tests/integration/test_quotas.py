"""Client quotas with a real producer: slowed to its client id's byte rate, others not.

No Python client speaks AlterClientQuotas/DescribeClientQuotas, so they are sent by
hand (raw_kafka, v0). Cost: one broker, ~15 s (the throttled producer runs ~5 s).
"""

from __future__ import annotations

import struct
import time

from confluent_kafka import Producer

from . import raw_kafka as raw
from .kafka_helpers import create_topic, producer_conf

API_DESCRIBE_CLIENT_QUOTAS = 48
API_ALTER_CLIENT_QUOTAS = 49
RATE = 100_000  # bytes per second
RECORD = 1000
COUNT = 600  # 600 kB: ~5 s at the quota, after a one-second burst


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
    body = raw.i32(1) + raw.string(entity_type) + raw.i8(match_type) + raw.string(None) + raw.i8(int(strict))
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


def _produce_timed(bootstrap: str, topic: str, client_id: str) -> tuple[float, float]:
    """(seconds to deliver everything, steady delivery rate in B/s: from the time 200 kB
    were delivered -- past the burst a quota window allows -- to the end)."""
    p = Producer(producer_conf(bootstrap, **{"client.id": client_id, "linger.ms": 0, "batch.size": 16384}))
    payload = b"x" * RECORD
    delivered: list[float] = []

    def done(err, msg) -> None:
        assert err is None, err
        delivered.append(time.monotonic())

    start = time.monotonic()
    for _ in range(COUNT):
        while True:
            try:
                p.produce(topic, payload, on_delivery=done)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    elapsed = time.monotonic() - start
    first = 200_000 // RECORD
    steady = (len(delivered) - first) * RECORD / max(delivered[-1] - delivered[first], 1e-6)
    return elapsed, steady


def test_a_client_id_quota_slows_that_producer_and_no_other(broker, topic) -> None:
    create_topic(broker.bootstrap, topic)
    assert alter_quotas(broker.bootstrap, [("client-id", "slow")], {"producer_byte_rate": RATE}) == [0]
    assert alter_quotas(broker.bootstrap, [("client-id", "x"), ("client-id", "y")], {"producer_byte_rate": 1}) == [42]
    assert alter_quotas(broker.bootstrap, [("client-id", "x")], {"no_such_quota": 1}) == [42]
    code, entries = describe_quotas(broker.bootstrap)
    assert code == 0 and entries == [([("client-id", "slow")], {"producer_byte_rate": float(RATE)})]

    fast, _ = _produce_timed(broker.bootstrap, topic, "fast")
    slow, steady = _produce_timed(broker.bootstrap, topic, "slow")
    print(f"unthrottled: {fast:.2f} s; throttled at {RATE} B/s: {slow:.2f} s, steady rate {steady:.0f} B/s")
    # (600 kB - a one-window burst of 100 kB - what is in flight when the throttle starts)
    # at 100 kB/s: 4-5 s; generous margins for a busy machine
    assert slow >= 3.0, f"throttled producer too fast: {slow:.2f}s"
    assert steady <= RATE * 1.3, f"steady rate {steady:.0f} B/s, quota {RATE}"  # (slower: a loaded machine)
    assert fast < slow / 2, f"the other client id was slowed too: {fast:.2f}s"

    # removing the quota lifts it (and it is gone from DescribeClientQuotas)
    assert alter_quotas(broker.bootstrap, [("client-id", "slow")], {"producer_byte_rate": None}) == [0]
    assert describe_quotas(broker.bootstrap) == (0, [])
    assert _produce_timed(broker.bootstrap, topic, "slow")[0] < slow / 2


def _metadata_throttle(sock, correlation_id: int, client_id: str) -> tuple[int, float]:
    """One Metadata v4 (all topics) on ``sock``: (throttle_time_ms, seconds to answer)."""
    start = time.monotonic()
    sock.sendall(raw.request(raw.API_METADATA, 4, correlation_id, raw.i32(-1) + raw.i8(0), client_id=client_id))
    answer = raw.read_response(sock)
    assert answer is not None and answer[0] == correlation_id
    return raw.Reader(answer[1]).i32(), time.monotonic() - start


def test_request_percentage_throttles_and_mutes_that_client_id(broker) -> None:
    # 0.01 % of a thread: about 1 s of throttle per 100 us of handler time
    assert alter_quotas(broker.bootstrap, [("client-id", "busy")], {"request_percentage": 0.01}) == [0]
    with raw.connect(broker.bootstrap) as busy, raw.connect(broker.bootstrap) as idle:
        throttles = [_metadata_throttle(busy, i, "busy")[0] for i in range(1, 4)]
        assert max(throttles) > 0, throttles
        # the connection was muted for the throttle time: the next answer waits for it
        last_throttle = throttles[-1]
        _, waited = _metadata_throttle(busy, 9, "busy")
        assert waited >= last_throttle / 1000 * 0.8, (waited, throttles)
        assert [_metadata_throttle(idle, i, "other")[0] for i in range(1, 4)] == [0, 0, 0]
