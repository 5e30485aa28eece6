"""Malformed input never poisons the broker: after each bad frame or batch the broker
process is alive and a real client still creates topics, produces and consumes."""

from __future__ import annotations

import random
import socket
import struct
import time

import pytest

from . import raw_kafka as raw
from .kafka_helpers import (
    MESSAGE_TOO_LARGE,
    UNKNOWN_TOPIC_OR_PARTITION,
    UNSUPPORTED_VERSION,
    Rec,
    assert_delivered,
    confluent_consume,
    confluent_produce,
    create_topic,
    now_ms,
    roundtrip_ok,
    watermarks,
)

pytestmark = pytest.mark.timeout(60)

CORRUPT_MESSAGE = 2
INVALID_RECORD = 87

# API keys the broker is specified to serve
REQUIRED_APIS = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 18: "ApiVersions",
    19: "CreateTopics", 20: "DeleteTopics", 32: "DescribeConfigs", 37: "CreatePartitions",
    60: "DescribeCluster",
}


def still_serving(broker) -> None:
    assert broker.is_running(), f"broker exited with {broker.proc.returncode}"
    roundtrip_ok(broker.bootstrap)
    assert broker.is_running()


def closed_or_answered(sock: socket.socket, correlation_id: int, timeout: float = 10.0) -> str:
    """Kafka closes a connection whose request it cannot parse; answering with an error
    for the same correlation id is also acceptable. Silence is not."""
    sock.settimeout(timeout)
    resp = raw.read_response(sock)
    if resp is None:
        return "closed"
    corr, _ = resp
    assert corr == correlation_id, f"answer for correlation id {corr}, sent {correlation_id}"
    return "answered"


# ---------------------------------------------------------- ApiVersions
def test_api_versions_v0_lists_the_served_apis(shared_broker):
    error, apis = raw.api_versions(shared_broker.bootstrap, 0)
    assert error == 0
    missing = {k: n for k, n in REQUIRED_APIS.items() if k not in apis}
    assert not missing, f"not advertised: {missing}"
    for key, (lo, hi) in apis.items():
        assert 0 <= lo <= hi, (key, lo, hi)
    # librdkafka disables compression unless Produce versions from v0 are advertised
    assert apis[0][0] == 0, f"Produce min version {apis[0][0]}"
    assert apis[18][1] >= 3


def test_api_versions_v3_uses_response_header_v0(shared_broker):
    error, apis = raw.api_versions(shared_broker.bootstrap, 3)
    assert error == 0
    assert 18 in apis and 0 in apis


def test_api_versions_unsupported_version_answers_v0_body(broker):
    with raw.connect(broker.bootstrap) as s:
        s.sendall(raw.request(raw.API_VERSIONS, 127, 42, b"\x00" * 8, flexible=True))
        resp = raw.read_response(s)
    assert resp is not None, "connection closed instead of UNSUPPORTED_VERSION"
    corr, body = resp
    assert corr == 42
    error, apis = raw.parse_api_versions_v0(body)
    assert error == UNSUPPORTED_VERSION
    assert 18 in apis and apis[18][0] == 0
    still_serving(broker)


# ------------------------------------------------------------ bad frames
@pytest.mark.parametrize("payload", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
    pytest.param(struct.pack(">i", 200_000_000) + b"\0" * 64, id="huge-size"),
    pytest.param(struct.pack(">i", 104_857_601) + b"\0" * 64, id="just-over-max-size"),
    pytest.param(struct.pack(">i", -5) + b"\0" * 64, id="negative-size"),
    pytest.param(random.Random(1).randbytes(4096), id="random-bytes"),
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 100, id="tls-hello"),
])
def test_garbage_gets_the_connection_closed(broker, payload):
    with raw.connect(broker.bootstrap) as s:
        s.sendall(payload)
        assert raw.closed_by_peer(s, timeout=10), "broker kept reading garbage"
    still_serving(broker)


def test_zero_size_frame(broker):
    with raw.connect(broker.bootstrap) as s:
        s.sendall(struct.pack(">i", 0))
        assert closed_or_answered(s, 0) == "closed"
    still_serving(broker)


def test_unknown_api_key(broker):
    with raw.connect(broker.bootstrap) as s:
        s.sendall(raw.request(9999, 0, 5, b"\0" * 16))
        closed_or_answered(s, 5)
    still_serving(broker)


def test_unsupported_version_of_metadata(broker):
    with raw.connect(broker.bootstrap) as s:
        s.sendall(raw.request(raw.API_METADATA, 999, 6, b"\0" * 16))
        closed_or_answered(s, 6)
    still_serving(broker)


@pytest.mark.parametrize("body", [
    pytest.param(raw.i32(5), id="array-count-without-elements"),
    pytest.param(raw.i32(1) + raw.i16(300) + b"abc", id="string-longer-than-frame"),
    pytest.param(raw.i32(2_000_000_000), id="absurd-array-count"),
    pytest.param(b"", id="empty-body-v1"),
])
def test_truncated_metadata_body(broker, body):
    with raw.connect(broker.bootstrap) as s:
        s.sendall(raw.request(raw.API_METADATA, 1, 8, body))
        closed_or_answered(s, 8)
    still_serving(broker)


def test_truncated_header(broker):
    with raw.connect(broker.bootstrap) as s:
        s.sendall(raw.i32(3) + b"\x00\x12\x00")  # a frame too short for a request header
        closed_or_answered(s, 0)
    still_serving(broker)


def test_disconnect_in_the_middle_of_a_frame(broker):
    for cut in (1, 3, 10, 50):
        with raw.connect(broker.bootstrap) as s:
            frame = raw.request(raw.API_METADATA, 1, 1, raw.i32(-1))
            s.sendall((raw.i32(1000) + frame[4:])[:cut])
    still_serving(broker)


def test_half_sent_frame_does_not_block_other_clients(broker):
    with raw.connect(broker.bootstrap) as stuck:
        stuck.sendall(raw.i32(500) + b"\x00\x03")  # promise 500 bytes, send 2
        started = time.monotonic()
        still_serving(broker)
        assert time.monotonic() - started < 20
        # and the stuck connection is still readable: finishing the frame is fine or closed
        stuck.sendall(b"\0" * 498)


def test_many_short_lived_connections(broker):
    rnd = random.Random(7)
    for i in range(200):
        with raw.connect(broker.bootstrap) as s:
            if i % 3 == 0:
                s.sendall(rnd.randbytes(rnd.randint(1, 64)))
    still_serving(broker)


def test_pipelined_requests_are_answered_in_order(broker):
    frames = b""
    for corr in range(1, 31):
        if corr % 2:
            frames += raw.request(raw.API_VERSIONS, 0, corr)
        else:
            frames += raw.request(raw.API_METADATA, 1, corr, raw.i32(0))  # no topics
    with raw.connect(broker.bootstrap) as s:
        s.sendall(frames)
        seen = []
        for _ in range(30):
            resp = raw.read_response(s)
            assert resp is not None, f"closed after {seen}"
            seen.append(resp[0])
    assert seen == list(range(1, 31))


# ------------------------------------------------------- bad record batches
def _produce_supported(broker) -> bool:
    _, apis = raw.api_versions(broker.bootstrap)
    lo, hi = apis.get(0, (99, -1))
    return lo <= 3 <= hi


def test_raw_valid_batch_is_accepted_and_readable(broker, topic):
    if not _produce_supported(broker):
        pytest.fail("Produce v3 not advertised")
    create_topic(broker.bootstrap, topic)
    ts = now_ms()
    batch = raw.record_batch([b"alpha", b"beta", b"gamma"], ts)
    assert raw.raw_produce(broker.bootstrap, topic, 0, batch) == (0, 0)
    got = confluent_consume(broker.bootstrap, topic, 3)
    assert [(g.offset, g.key, g.value, g.timestamp) for g in got] == [
        (0, b"k0", b"alpha", ts), (1, b"k1", b"beta", ts + 1), (2, b"k2", b"gamma", ts + 2)]


@pytest.mark.parametrize("damage", ["crc", "count", "length", "magic"])
def test_corrupt_batch_is_refused(broker, topic, damage):
    if not _produce_supported(broker):
        pytest.fail("Produce v3 not advertised")
    bs = broker.bootstrap
    create_topic(bs, topic)
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"before", (), None)]))
    batch = bytearray(raw.record_batch([b"one", b"two"], now_ms()))
    if damage == "crc":
        batch[-1] ^= 0x55
    elif damage == "count":
        batch = bytearray(raw.record_batch([b"one", b"two"], now_ms(), count=5))
    elif damage == "length":
        struct.pack_into(">i", batch, 8, len(batch) + 100)  # claims bytes that are not there
    elif damage == "magic":
        batch[16] = 7
    error, _ = raw.raw_produce(bs, topic, 0, bytes(batch))
    assert error in (CORRUPT_MESSAGE, INVALID_RECORD), f"error code {error}"
    assert watermarks(bs, topic) == (0, 1), "a refused batch changed the log"
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"after", (), None)]),
                     first_offset=1)
    assert [g.value for g in confluent_consume(bs, topic, 2)] == [b"before", b"after"]


def test_produce_to_unknown_partition(broker, topic):
    if not _produce_supported(broker):
        pytest.fail("Produce v3 not advertised")
    create_topic(broker.bootstrap, topic)
    batch = raw.record_batch([b"x"], now_ms())
    error, _ = raw.raw_produce(broker.bootstrap, topic, 5, batch)
    assert error == UNKNOWN_TOPIC_OR_PARTITION
    error, _ = raw.raw_produce(broker.bootstrap, topic + "-nope", 0, batch)
    assert error == UNKNOWN_TOPIC_OR_PARTITION
    still_serving(broker)


def test_batch_size_limit_is_exact(make_broker, topic):
    """message.max.bytes bounds the whole record batch: at the limit is accepted,
    one byte over is MESSAGE_TOO_LARGE (error 10)."""
    limit = 1000
    b = make_broker(**{"message.max.bytes": limit})
    create_topic(b.bootstrap, topic)

    def batch_of_size(size: int) -> bytes:
        value_len = size - 80
        while True:
            batch = raw.record_batch([b"s" * value_len], now_ms())
            if len(batch) == size:
                return batch
            value_len += size - len(batch)

    assert raw.raw_produce(b.bootstrap, topic, 0, batch_of_size(limit)) == (0, 0)
    error, _ = raw.raw_produce(b.bootstrap, topic, 0, batch_of_size(limit + 1))
    assert error == MESSAGE_TOO_LARGE
    assert watermarks(b.bootstrap, topic) == (0, 1)


# ------------------------------------------------------------ protocol corners
def _metadata_topic_names_v1(body: bytes) -> list[str]:
    r = raw.Reader(body)
    for _ in range(r.i32()):  # brokers: node_id, host, port, rack
        r.i32()
        r.string()
        r.i32()
        r.string()
    r.i32()  # controller id
    names = []
    for _ in range(r.i32()):
        r.i16()
        names.append(r.string())
        r.take(1)  # is_internal
        for _ in range(r.i32()):
            r.i16()
            r.i32()
            r.i32()
            for _ in range(2):  # replicas, isr
                for _ in range(r.i32()):
                    r.i32()
    assert r.done()
    return names


def _metadata_topic_names_v0(body: bytes) -> list[str]:
    r = raw.Reader(body)
    for _ in range(r.i32()):  # brokers: node_id, host, port
        r.i32()
        r.string()
        r.i32()
    names = []
    for _ in range(r.i32()):
        r.i16()
        names.append(r.string())
        for _ in range(r.i32()):
            r.i16()
            r.i32()
            r.i32()
            for _ in range(2):
                for _ in range(r.i32()):
                    r.i32()
    assert r.done()
    return names


def test_metadata_empty_topic_list_means_all_in_v0_and_none_in_v1(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    _, apis = raw.api_versions(bs)
    lo, _ = apis[raw.API_METADATA]
    with raw.connect(bs) as s:
        if lo == 0:
            s.sendall(raw.request(raw.API_METADATA, 0, 1, raw.i32(0)))
            corr, body = raw.read_response(s)
            assert topic in _metadata_topic_names_v0(body), "v0 [] must list all topics"
        s.sendall(raw.request(raw.API_METADATA, 1, 2, raw.i32(0)))
        corr, body = raw.read_response(s)
        assert corr == 2 and _metadata_topic_names_v1(body) == [], "v1 [] must list none"
        s.sendall(raw.request(raw.API_METADATA, 1, 3, raw.i32(-1)))
        corr, body = raw.read_response(s)
        assert corr == 3 and topic in _metadata_topic_names_v1(body), "v1 null = all topics"


def test_unknown_tagged_fields_are_skipped(broker):
    """Flexible versions may carry tagged fields the broker does not know: skip, not fail."""
    tagged = raw.uvarint(2) + raw.uvarint(77) + raw.uvarint(3) + b"abc" \
        + raw.uvarint(1000) + raw.uvarint(0)
    header = raw.i16(raw.API_VERSIONS) + raw.i16(3) + raw.i32(11) + raw.string("c") + tagged
    body = raw.compact_string("moldau-raw-test") + raw.compact_string("1.0") + tagged
    with raw.connect(broker.bootstrap) as s:
        s.sendall(raw.i32(len(header) + len(body)) + header + body)
        resp = raw.read_response(s)
    assert resp is not None, "connection closed on unknown tagged fields"
    corr, rest = resp
    assert corr == 11
    error, apis = raw.parse_api_versions_v3(rest)
    assert error == 0 and 18 in apis
    still_serving(broker)


def test_null_client_id(shared_broker):
    with raw.connect(shared_broker.bootstrap) as s:
        s.sendall(raw.request(raw.API_VERSIONS, 0, 12, client_id=None))
        resp = raw.read_response(s)
    assert resp is not None and resp[0] == 12
    assert raw.parse_api_versions_v0(resp[1])[0] == 0


def test_socket_request_max_bytes_setting(make_broker):
    b = make_broker(**{"socket.request.max.bytes": 4096})
    with raw.connect(b.bootstrap) as s:
        s.sendall(raw.request(raw.API_METADATA, 1, 1, raw.i32(-1) + b"\0" * 5000))
        assert raw.closed_by_peer(s, timeout=10), "frame over socket.request.max.bytes was read"
    err, apis = raw.api_versions(b.bootstrap)
    assert err == 0 and apis


# ----------------------------------------------- nulls the protocol forbids
@pytest.mark.parametrize(("api_key", "version", "body"), [
    pytest.param(15, 0, raw.i32(-1), id="DescribeGroups-v0-groups"),
    pytest.param(3, 0, raw.i32(-1), id="Metadata-v0-topics"),
    pytest.param(2, 1, raw.i32(-1) + raw.i32(-1), id="ListOffsets-v1-topics"),
    pytest.param(0, 3, raw.string(None) + raw.i16(1) + raw.i32(1000) + raw.i32(-1), id="Produce-v3-topic-data"),
    pytest.param(0, 3, raw.string(None) + raw.i16(1) + raw.i32(1000) + raw.i32(1) + raw.string("t")
                 + raw.i32(-1), id="Produce-v3-partition-data"),
    pytest.param(20, 1, raw.i32(-1) + raw.i32(1000), id="DeleteTopics-v1-names"),
    pytest.param(9, 1, raw.string("g") + raw.i32(-1), id="OffsetFetch-v1-topics"),
    pytest.param(32, 1, raw.i32(-1) + raw.i8(0), id="DescribeConfigs-v1-resources"),
    pytest.param(15, 0, raw.i32(1) + raw.string(None), id="DescribeGroups-v0-group-id"),
])
def test_null_where_the_protocol_forbids_it_closes_the_connection(shared_broker, api_key, version, body):
    """Kafka's decoder throws "non-nullable field ... was serialized as null" and the
    broker closes the connection; no handler may meet the None (it used to raise
    TypeError inside handlers)."""
    mark = shared_broker.log_size()
    with raw.connect(shared_broker.bootstrap) as s:
        s.sendall(raw.request(api_key, version, 9, body))
        assert closed_or_answered(s, 9) == "closed"
    log = shared_broker.log_text(mark)
    assert "Traceback" not in log and "handler failed" not in log, log
    assert "serialized as null" in log or "non-nullable" in log, log
    error, _ = raw.api_versions(shared_broker.bootstrap)
    assert error == 0


def test_null_records_where_the_protocol_allows_them(shared_broker, topic):
    """Produce's records field is nullable in the spec: a null there is answered per
    partition (no traceback), not a reason to close the connection."""
    create_topic(shared_broker.bootstrap, topic)
    mark = shared_broker.log_size()
    body = (raw.string(None) + raw.i16(1) + raw.i32(1000) + raw.i32(1) + raw.string(topic)
            + raw.i32(1) + raw.i32(0) + raw.i32(-1))
    with raw.connect(shared_broker.bootstrap) as s:
        s.sendall(raw.request(raw.API_PRODUCE, 3, 11, body))
        closed_or_answered(s, 11)
    log = shared_broker.log_text(mark)
    assert "Traceback" not in log and "handler failed" not in log, log
    still_serving(shared_broker)
