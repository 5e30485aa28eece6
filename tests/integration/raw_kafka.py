"""Just enough of the Kafka wire protocol, by hand, to send well-formed and malformed
frames over a raw socket (independent of the broker's own protocol code).

Reference: the Kafka protocol guide (request/response headers, ApiVersions, Produce)
and the record batch v2 format.
"""

from __future__ import annotations

import socket
import struct
import time

import google_crc32c

API_PRODUCE = 0
API_METADATA = 3
API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_WRITE_TXN_MARKERS = 27
API_DESCRIBE_PRODUCERS = 61


# ------------------------------------------------------------- primitives
def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(s: str | None) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v: int) -> bytes:
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data), f"read past end: {self.pos}+{n} > {len(self.data)}"
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def done(self) -> bool:
        return self.pos == len(self.data)


# ------------------------------------------------------------------ frames
def request(api_key: int, version: int, correlation_id: int, body: bytes = b"",
            client_id: str | None = "moldau-raw-test", flexible: bool = False) -> bytes:
    header = i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)
    if flexible:
        header += uvarint(0)  # request header v2: tagged fields
    payload = header + body
    return i32(len(payload)) + payload


def connect(bootstrap: str, timeout: float = 10.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_response(sock: socket.socket) -> tuple[int, bytes] | None:
    """(correlation id, rest of the response) or None if the broker closed the connection."""
    try:
        size = recv_exact(sock, 4)
        if size is None:
            return None
        (n,) = struct.unpack(">i", size)
        payload = recv_exact(sock, n)
        if payload is None:
            return None
    except (ConnectionResetError, BrokenPipeError):
        return None
    return struct.unpack_from(">i", payload)[0], payload[4:]


def closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> bool:
    """True if the broker closes the connection (EOF or reset) within ``timeout``."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not data:
            return True
    return False


def api_versions(bootstrap: str, version: int = 0) -> tuple[int, dict[int, tuple[int, int]]]:
    """(error code, {api key: (min, max)}) from an ApiVersions request of ``version``."""
    body = b""
    if version >= 3:
        body = compact_string("moldau-raw-test") + compact_string("1.0") + uvarint(0)
    with connect(bootstrap) as s:
        s.sendall(request(API_VERSIONS, version, 7, body, flexible=version >= 3))
        resp = read_response(s)
    assert resp is not None, "broker closed the connection instead of answering ApiVersions"
    corr, rest = resp
    assert corr == 7
    return parse_api_versions_v0(rest) if version < 3 else parse_api_versions_v3(rest)


def parse_api_versions_v0(data: bytes) -> tuple[int, dict[int, tuple[int, int]]]:
    r = Reader(data)
    error = r.i16()
    apis = {}
    for _ in range(r.i32()):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        apis[key] = (lo, hi)
    return error, apis


def parse_api_versions_v3(data: bytes) -> tuple[int, dict[int, tuple[int, int]]]:
    """Body after a v0 response header (ApiVersions responses never use header v1)."""
    r = Reader(data)
    error = r.i16()
    n = r.uvarint() - 1
    assert n >= 0, "null api_keys array: was a tagged-field byte put in the response header?"
    apis = {}
    for _ in range(n):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        r.skip_tagged_fields()
        apis[key] = (lo, hi)
    r.i32()  # throttle_time_ms
    r.skip_tagged_fields()
    assert r.done(), f"{len(data) - r.pos} unexpected bytes after the ApiVersions v3 body"
    return error, apis


# ------------------------------------------------------------ record batch
def record(offset_delta: int, key: bytes | None, value: bytes | None,
           headers: list[tuple[str, bytes]] = (), timestamp_delta: int = 0) -> bytes:
    body = i8(0) + varint(timestamp_delta) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        kb = hk.encode()
        body += varint(len(kb)) + kb + varint(len(hv)) + hv
    return varint(len(body)) + body


def record_batch(values: list[bytes], base_timestamp: int, count: int | None = None,
                 keys: list[bytes | None] | None = None, base_offset: int = 0, *,
                 producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1,
                 transactional: bool = False) -> bytes:
    """An uncompressed v2 batch (keys ``k0``, ``k1``... unless given); ``count`` can lie
    about the records. ``base_offset`` is outside the CRC, as brokers patch it. With a
    producer id it is an idempotent producer's batch, a transaction's with
    ``transactional`` (attribute bit 4)."""
    keys = [b"k%d" % i for i in range(len(values))] if keys is None else keys
    records = b"".join(record(i, k, v, timestamp_delta=i) for i, (k, v) in enumerate(zip(keys, values, strict=True)))
    after_crc = (
        i16(0x10 if transactional else 0)  # attributes
        + i32(len(values) - 1)  # last offset delta
        + i64(base_timestamp)
        + i64(base_timestamp + len(values) - 1)
        + i64(producer_id) + i16(producer_epoch) + i32(base_sequence)
        + i32(len(values) if count is None else count)
        + records
    )
    crc = google_crc32c.value(after_crc)
    after_length = i32(-1) + i8(2) + struct.pack(">I", crc) + after_crc
    return i64(base_offset) + i32(len(after_length)) + after_length


def produce_v3(topic: str, partition: int, batch: bytes, acks: int = -1,
               timeout_ms: int = 10000) -> bytes:
    return (string(None) + i16(acks) + i32(timeout_ms)
            + i32(1) + string(topic) + i32(1) + i32(partition) + i32(len(batch)) + batch)


def parse_produce_v3(data: bytes) -> dict[tuple[str, int], tuple[int, int]]:
    """{(topic, partition): (error code, base offset)}"""
    r = Reader(data)
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            index, error, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log_append_time_ms
            out[(name, index)] = (error, base)
    r.i32()  # throttle
    return out


def parse_produce_v8(data: bytes) -> dict[tuple[str, int], tuple[int, int, list[tuple[int, str | None]], str | None]]:
    """{(topic, partition): (error code, base offset, record_errors, error_message)}"""
    r = Reader(data)
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            index, error, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log_append_time_ms
            r.i64()  # log_start_offset (v5+)
            record_errors = [(r.i32(), r.string()) for _ in range(r.i32())]
            out[(name, index)] = (error, base, record_errors, r.string())
    r.i32()  # throttle
    assert r.done(), f"{len(data) - r.pos} unexpected bytes after the Produce v8 body"
    return out


def raw_produce_v8(bootstrap: str, topic: str, partition: int, batch: bytes, acks: int = -1
                   ) -> tuple[int, int, list[tuple[int, str | None]], str | None]:
    """Produce v8 (the request is v3's; the answer adds record_errors and error_message)."""
    with connect(bootstrap) as s:
        s.sendall(request(API_PRODUCE, 8, 98, produce_v3(topic, partition, batch, acks)))
        resp = read_response(s)
    assert resp is not None, "broker closed the connection instead of answering Produce"
    corr, rest = resp
    assert corr == 98
    return parse_produce_v8(rest)[(topic, partition)]


def raw_produce(bootstrap: str, topic: str, partition: int, batch: bytes,
                acks: int = -1) -> tuple[int, int]:
    with connect(bootstrap) as s:
        s.sendall(request(API_PRODUCE, 3, 99, produce_v3(topic, partition, batch, acks)))
        resp = read_response(s)
    assert resp is not None, "broker closed the connection instead of answering Produce"
    corr, rest = resp
    assert corr == 99
    return parse_produce_v3(rest)[(topic, partition)]


# ------------------------------------------------------- metadata and topics
def metadata_v4(topics: list[str], allow_auto_topic_creation: bool = True) -> bytes:
    """A Metadata v4 request body (non-flexible) naming ``topics``."""
    body = i32(len(topics)) + b"".join(string(t) for t in topics)
    return body + i8(1 if allow_auto_topic_creation else 0)


def create_topics_v2(topics: list[tuple[str, int]], timeout_ms: int = 10000) -> bytes:
    """A CreateTopics v2 request body: (name, partitions) each, replication factor -1."""
    body = i32(len(topics))
    for name, partitions in topics:
        body += string(name) + i32(partitions) + i16(-1) + i32(0) + i32(0)
    return body + i32(timeout_ms) + i8(0)


# ------------------------------------------------------------- transactions
def compact_array(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


def write_txn_markers_v1(markers: list[tuple[int, int, bool, int, dict[str, list[int]]]]) -> bytes:
    """A WriteTxnMarkers v1 body (flexible): (producer id, epoch, commit, coordinator
    epoch, {topic: [partitions]}) per marker."""
    out = []
    for producer_id, epoch, commit, coordinator_epoch, topics in markers:
        body = i64(producer_id) + i16(epoch) + i8(1 if commit else 0)
        body += compact_array([
            compact_string(name) + compact_array([i32(p) for p in parts]) + uvarint(0)
            for name, parts in topics.items()
        ])
        body += i32(coordinator_epoch) + uvarint(0)
        out.append(body)
    return compact_array(out) + uvarint(0)


def parse_write_txn_markers_v1(data: bytes) -> dict[tuple[int, str, int], int]:
    """{(producer id, topic, partition): error code}; ``data`` starts at response header v1's tags."""
    r = Reader(data)
    r.skip_tagged_fields()  # response header v1
    out = {}
    for _ in range(r.uvarint() - 1):
        producer_id = r.i64()
        for _ in range(r.uvarint() - 1):
            name = r.take(r.uvarint() - 1).decode()
            for _ in range(r.uvarint() - 1):
                index, error = r.i32(), r.i16()
                r.skip_tagged_fields()
                out[(producer_id, name, index)] = error
            r.skip_tagged_fields()
        r.skip_tagged_fields()
    r.skip_tagged_fields()
    assert r.done(), "unexpected bytes after the WriteTxnMarkers v1 body"
    return out


def write_txn_markers(bootstrap: str, markers: list[tuple[int, int, bool, int, dict[str, list[int]]]]
                      ) -> dict[tuple[int, str, int], int]:
    """Send WriteTxnMarkers v1, as a transaction coordinator does; the error per partition."""
    with connect(bootstrap) as s:
        s.sendall(request(API_WRITE_TXN_MARKERS, 1, 27, write_txn_markers_v1(markers), flexible=True))
        resp = read_response(s)
    assert resp is not None, "broker closed the connection instead of answering WriteTxnMarkers"
    corr, rest = resp
    assert corr == 27
    return parse_write_txn_markers_v1(rest)


def describe_producers(bootstrap: str, topic: str, partition: int) -> tuple[int, list[tuple[int, ...]]]:
    """DescribeProducers v0: (error code, [(producer id, epoch, last sequence, last
    timestamp, coordinator epoch, current txn start offset)])."""
    body = compact_array([compact_string(topic) + compact_array([i32(partition)]) + uvarint(0)]) + uvarint(0)
    with connect(bootstrap) as s:
        s.sendall(request(API_DESCRIBE_PRODUCERS, 0, 61, body, flexible=True))
        resp = read_response(s)
    assert resp is not None
    corr, rest = resp
    assert corr == 61
    r = Reader(rest)
    r.skip_tagged_fields()
    r.i32()  # throttle
    error, producers = -1, []
    for _ in range(r.uvarint() - 1):
        r.take(r.uvarint() - 1)  # name
        for _ in range(r.uvarint() - 1):
            r.i32()
            error = r.i16()
            n = r.uvarint()
            if n:
                r.take(n - 1)  # error message
            for _ in range(r.uvarint() - 1):
                producers.append((r.i64(), r.i32(), r.i32(), r.i64(), r.i32(), r.i64()))
                r.skip_tagged_fields()
            r.skip_tagged_fields()
        r.skip_tagged_fields()
    r.skip_tagged_fields()
    return error, producers
