"""A protocol fuzzer: valid request frames of every served API and version, mutated,
sent to a real broker process over raw sockets, with the broker's health checked after
every batch.

Theory of operation:

* **Seeds.** For each API the broker registers (``moldau.handlers.registry.HANDLERS``)
  and each version it serves, :func:`seed_frames` fills the codec's request class from
  its schema with plausible values (existing topic names, small timeouts, real record
  batches built with ``moldau.records.build_batch``, plain and compressed) and encodes it
  with the project's own encoder. The seeds are valid: ``test_fuzz.py`` checks that the
  broker answers every one of them.
* **Mutations.** :class:`Mutator` derives a hostile frame from a seed with one or two of:
  bit flips, bytes or 2/4/8-byte words replaced by interesting values (0, -1, 0x7f..,
  0x80..), truncation, extension, a tampered size prefix, an array count made null, huge
  or negative (its position is found by encoding the request with the array null and
  empty and diffing), a field of the request object set to an interesting value or to
  null before encoding, a record batch changed inside with its CRC recomputed (so record
  validation is reached), a splice of two frames of different APIs, and a changed API
  key or version in the header. Every frame carries a label saying what was done.
* **Delivery.** :func:`send_batch` spreads a batch of frames over many connections,
  pipelined, with one selector thread that writes and reads at once. A connection is
  fine when the broker answers every complete frame on it (as the broker's framing sees
  the byte stream) or closes it; a **hang** is neither within the timeout. Requests
  that may park by design (Fetch long-poll, JoinGroup and SyncGroup waiting for a
  rebalance) are counted as *parked*, not as hangs.
* **Health.** :class:`Fuzzer` checks after every batch that the process lives, answers
  a fresh ApiVersions, that its resident memory stays under a bound, and that the log
  written meanwhile holds no traceback; every so many batches, that a real client
  (confluent-kafka) still creates a topic, produces and consumes. A batch that leaves a
  traceback is replayed frame by frame to name the frame that caused it (a reproducer).

Everything is driven by one ``random.Random(seed)``: a seed and a frame count give the
same frames every time (the broker's answers may differ with timing, not the frames).
"""

from __future__ import annotations

import dataclasses
import random
import re
import selectors
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import moldau.handlers  # noqa: F401 - registers the handlers
from moldau.handlers.registry import HANDLERS
from moldau.protocol.codec import Struct
from moldau.protocol.header import decode_request_header, encode_request_header
from moldau.protocol.schema import Field
from moldau.records.batch import Compression
from moldau.records.record import build_batch

from . import raw_kafka as raw

# APIs whose requests may legitimately wait (long-poll, rebalance): not hangs
PARKING_APIS = frozenset({1, 11, 14})
TRACEBACK_MARKERS = ("Traceback", "unexpected error", "handler failed")
TOPICS = ("fuzz-a", "fuzz-b")
GROUP = "fuzz-group"

INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFF)
INTERESTING_16 = (0, 1, -1, 0x7FFF, -0x8000, 0x100)
INTERESTING_32 = (0, 1, -1, -2, 0x7FFFFFFF, -0x80000000, 0x10000, 0x7FFF, 1 << 24)
INTERESTING_64 = (0, -1, 0x7FFFFFFFFFFFFFFF, -0x8000000000000000, 1 << 40)
INTERESTING_INTS = (-1, -2, 0, 1, 0x7F, 0x80, 0x7FFF, -0x8000, 0xFFFF, 0x7FFFFFFF, -0x80000000, 1 << 24)

_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint32": (0, (1 << 32) - 1),
}


# ------------------------------------------------------------------ seed frames
@dataclasses.dataclass
class Seed:
    """A valid request of one API and version: the object and its encoded body."""

    api_key: int
    version: int
    request: Any
    body: bytes

    @property
    def flexible(self) -> bool:
        return HANDLERS[self.api_key].api.is_flexible(self.version)


def served_versions() -> Iterator[tuple[int, int]]:
    for key, handler in sorted(HANDLERS.items()):
        for version in range(handler.min_version, handler.max_version + 1):
            yield key, version


def _batch(rng: random.Random) -> bytes:
    count = rng.randint(1, 5)
    records = [
        (
            None if rng.random() < 0.5 else f"k{i}".encode(),
            b"v" * rng.randint(0, 300),
            [("h", b"x")] if rng.random() < 0.3 else [],
            1_700_000_000_000 + i,
        )
        for i in range(count)
    ]
    compression = rng.choice(list(Compression))
    return build_batch(records, compression=compression)


_INT_HINTS = (
    ("max_wait", 5),
    ("timeout", 1000),
    ("session_timeout", 6000),
    ("rebalance_timeout", 100),
    ("acks", -1),
    ("replication_factor", 1),
    ("num_partitions", 1),
    ("count", 2),
    ("max_bytes", 1 << 20),
    ("min_bytes", 1),
    ("partition_max_bytes", 1 << 20),
    ("leader_epoch", -1),
    ("generation", -1),
    ("member_epoch", 0),
    ("producer_id", -1),
    ("producer_epoch", -1),
    ("timestamp", -1),
    ("offset", 0),
    ("isolation_level", 0),
    ("resource_type", 2),
    ("key_type", 0),
    ("config_operation", 0),
    ("throttle", 0),
)

_STRING_HINTS = (
    ("group", GROUP),
    ("topic", TOPICS[0]),
    ("name", TOPICS[0]),
    ("resource_name", TOPICS[0]),
    ("protocol_type", "consumer"),
    ("protocol_name", "range"),
    ("member_id", ""),
    ("key", "retention.ms"),
    ("value", "86400000"),
    ("rack", ""),
    ("assignor", "uniform"),
    ("client_software_name", "fuzz"),
    ("client_software_version", "1.0"),
    ("transactional_id", "fuzz-txn"),
)


def _int_for(name: str, type_name: str) -> int:
    for hint, value in _INT_HINTS:
        if hint in name:
            low, high = _RANGES[type_name]
            return value if low <= value <= high else 0
    return 0


def _string_for(name: str, rng: random.Random) -> str:
    for hint, value in _STRING_HINTS:
        if hint in name:
            if value in TOPICS:
                return rng.choice(TOPICS)
            return value
    return "fuzz"


def fill(cls: type[Struct], fields: list[Field], version: int, rng: random.Random) -> Struct:
    """A request (or nested struct) of ``version`` with every present field filled in."""
    obj = cls()
    for f in fields:
        if not f.present_in(version):
            continue
        if f.is_array:
            n = 1 if rng.random() < 0.8 else rng.randint(0, 3)
            if f.is_struct:
                sub = getattr(cls, f.type)
                value: Any = [fill(sub, f.children, version, rng) for _ in range(n)]
                if f.name in ("partitions", "partition_data", "partition_indexes") and rng.random() < 0.5:
                    for i, item in enumerate(value):  # distinct partitions 0..n-1
                        for pf in item._fields:
                            if pf.name in ("index", "partition_index", "partition"):
                                setattr(item, pf.name, i)
            else:
                value = [_primitive(f, version, rng) for _ in range(n)]
            setattr(obj, f.name, value)
        elif f.is_struct:
            setattr(obj, f.name, fill(getattr(cls, f.type), f.children, version, rng))
        else:
            setattr(obj, f.name, _primitive(f, version, rng))
    return obj


def _primitive(f: Field, version: int, rng: random.Random) -> Any:
    name = f.name
    t = f.type
    if t in _RANGES:
        return _int_for(name, t)
    if t == "bool":
        return rng.random() < 0.7
    if t == "float64":
        return 0.0
    if t == "uuid":
        return f.default
    if t == "records":
        return _batch(rng)
    if t == "bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 24)))
    if t == "string":
        if f.nullable_in(version) and ("transactional" in name or "instance" in name or "regex" in name):
            return None
        return _string_for(name, rng)
    raise AssertionError(f"unknown type {t}")


def seed_frames(rng: random.Random, per_version: int = 2) -> list[Seed]:
    """``per_version`` valid requests for every (API, version) the broker serves."""
    seeds = []
    for key, version in served_versions():
        codec = HANDLERS[key].codec
        for _ in range(per_version):
            request = fill(codec.Request, codec.api.request_fields, version, rng)
            seeds.append(Seed(key, version, request, codec.encode_request(version, request)))
    return seeds


def frame(api_key: int, version: int, correlation_id: int, body: bytes, flexible: bool,
          client_id: str | None = "fuzz") -> bytearray:
    """Size prefix, request header and body."""
    out = bytearray(b"\0\0\0\0")
    out += encode_request_header(api_key, version, correlation_id, client_id, flexible)
    out += body
    out[0:4] = struct.pack(">i", len(out) - 4)
    return out


# ---------------------------------------------------------------------- mutation
@dataclasses.dataclass
class Frame:
    data: bytes
    api_key: int
    version: int
    label: str


class Mutator:
    """Hostile variants of valid seed frames, all drawn from one ``random.Random``."""

    def __init__(self, seeds: list[Seed], rng: random.Random) -> None:
        self.seeds = seeds
        self.rng = rng
        self.correlation = 0
        self.byte_ops = [
            self.bit_flips, self.interesting_byte, self.interesting_word, self.truncate,
            self.extend, self.size_prefix, self.splice, self.header_api, self.random_bytes,
        ]

    def next_correlation(self) -> int:
        self.correlation = (self.correlation + 1) & 0x7FFFFFFF
        return self.correlation

    def one(self) -> Frame:
        rng = self.rng
        seed = rng.choice(self.seeds)
        label = f"{HANDLERS[seed.api_key].api.name} v{seed.version}"
        r = rng.random()
        if r < 0.05:
            return Frame(bytes(self._frame(seed, seed.body)), seed.api_key, seed.version, label + " valid")
        if r < 0.30:
            body, what = self.structural(seed)
            data = self._frame(seed, body)
        elif r < 0.40 and seed.api_key == 0:
            body, what = self.batch_inside(seed)
            data = self._frame(seed, body)
        else:
            data = self._frame(seed, seed.body)
            what = ""
        ops = rng.choice((1, 1, 1, 2)) if not what or rng.random() < 0.3 else 0
        for _ in range(ops):
            if len(data) < 16:
                break
            op = rng.choice(self.byte_ops)
            data, step = op(data, seed)
            what = f"{what}; {step}" if what else step
        return Frame(bytes(data), seed.api_key, seed.version, f"{label}: {what}")

    def _frame(self, seed: Seed, body: bytes) -> bytearray:
        return frame(seed.api_key, seed.version, self.next_correlation(), body, seed.flexible)

    # -- object-level: values a well-formed encoder can carry -------------------------
    def structural(self, seed: Seed) -> tuple[bytes, str]:
        codec = HANDLERS[seed.api_key].codec
        request = codec.decode_request(seed.version, seed.body)
        slots = list(_slots(request, type(request), seed.version, "req"))
        if not slots:
            return seed.body, "no fields"
        obj, f, path = self.rng.choice(slots)
        rng = self.rng
        if f.is_array:
            choice = rng.randrange(4)
            if choice == 0:
                setattr(obj, f.name, None)
                what = f"{path}=null"
            elif choice == 1:
                setattr(obj, f.name, [])
                what = f"{path}=[]"
            elif choice == 2:
                items = getattr(obj, f.name) or []
                n = rng.choice((2, 10, 1000))
                setattr(obj, f.name, (items * n)[: n * max(1, len(items))])
                what = f"{path} x{n}"
            else:
                return self.array_count(seed, request, obj, f, path)
        elif f.type in _RANGES:
            low, high = _RANGES[f.type]
            value = rng.choice([v for v in INTERESTING_INTS if low <= v <= high] or [0])
            setattr(obj, f.name, value)
            what = f"{path}={value}"
        elif f.type in ("string", "bytes", "records") or f.is_struct:
            choice = rng.randrange(3)
            if choice == 0 or f.is_struct:
                setattr(obj, f.name, None)
                what = f"{path}=null"
            elif f.type == "string":
                value = rng.choice(("", "a" * 300, "..", "é\u0000", "__consumer_offsets", "x/y"))
                setattr(obj, f.name, value)
                what = f"{path}={value[:12]!r}"
            elif f.type == "bytes":
                setattr(obj, f.name, b"")
                what = f"{path}=b''"
            else:
                setattr(obj, f.name, b"\0" * rng.choice((0, 1, 61, 100)))
                what = f"{path}=zeros"
        else:
            return seed.body, "no change"
        try:
            body = codec.encode_request(seed.version, request)
        except Exception:  # noqa: BLE001 - the encoder refuses some values: fine
            return seed.body, "unencodable"
        return body, what

    def array_count(self, seed: Seed, request: Any, obj: Any, f: Field, path: str) -> tuple[bytes, str]:
        """Patch an array's count on the wire: huge, negative or off by one."""
        codec = HANDLERS[seed.api_key].codec
        saved = getattr(obj, f.name)
        try:
            setattr(obj, f.name, None)
            as_null = codec.encode_request(seed.version, request)
            setattr(obj, f.name, [])
            as_empty = codec.encode_request(seed.version, request)
        except Exception:  # noqa: BLE001
            return seed.body, "unencodable"
        finally:
            setattr(obj, f.name, saved)
        full = codec.encode_request(seed.version, request)
        at = next((i for i, (a, b) in enumerate(zip(as_null, as_empty, strict=False)) if a != b), None)
        if at is None:
            return full, "count not found"
        flexible = seed.flexible
        if flexible:
            old_len = len(raw.uvarint(len(saved or []) + 1))
            value = self.rng.choice((0, 2, 0x7F, 0x80, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x7FFFFFFFF))
            return full[:at] + raw.uvarint(value) + full[at + old_len:], f"{path} compact count={value}"
        value = self.rng.choice(INTERESTING_32 + (len(saved or []) + 1,))
        return full[:at] + struct.pack(">i", value) + full[at + 4:], f"{path} count={value}"

    def batch_inside(self, seed: Seed) -> tuple[bytes, str]:
        """Change the bytes of a record batch after its CRC field, then fix the CRC."""
        codec = HANDLERS[seed.api_key].codec
        request = codec.decode_request(seed.version, seed.body)
        parts = [p for t in request.topic_data or () for p in t.partition_data or () if p.records]
        if not parts:
            return seed.body, "no batch"
        part = self.rng.choice(parts)
        batch = bytearray(part.records)
        if len(batch) <= 61:
            return seed.body, "short batch"
        rng = self.rng
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(21, len(batch))
            kind = rng.randrange(3)
            if kind == 0:
                batch[pos] ^= 1 << rng.randrange(8)
            elif kind == 1:
                batch[pos] = rng.choice(INTERESTING_8)
            elif pos + 4 <= len(batch):
                batch[pos:pos + 4] = struct.pack(">i", rng.choice(INTERESTING_32))
        from google_crc32c import value as crc32c

        batch[17:21] = struct.pack(">I", crc32c(bytes(batch[21:])))
        part.records = bytes(batch)
        return codec.encode_request(seed.version, request), "batch changed, CRC fixed"

    # -- byte-level -----------------------------------------------------------------
    def _refit(self, data: bytearray) -> bytearray:
        data[0:4] = struct.pack(">i", len(data) - 4)
        return data

    def bit_flips(self, data: bytearray, seed: Seed) -> tuple[bytearray, str]:
        n = self.rng.choice((1, 1, 2, 4, 8))
        for _ in range(n):
            pos = self.rng.randrange(4, len(data))
            data[pos] ^= 1 << self.rng.randrange(8)
        return data, f"{n} bit flips"

    def interesting_byte(self, data: bytearray, seed: Seed) -> tuple[bytearray, str]:
        pos = self.rng.randrange(4, len(data))
        value = self.rng.choice(INTERESTING_8)
        data[pos] = value
        return data, f"byte {pos}=0x{value:02x}"

    def interesting_word(self, data: bytearray, seed: Seed) -> tuple[bytearray, str]:
        size, values, code = self.rng.choice(((2, INTERESTING_16, ">h"), (4, INTERESTING_32, ">i"),
                                              (8, INTERESTING_64, ">q")))
        if len(data) < 4 + size:
            return data, "too short"
        pos = self.rng.randrange(4, len(data) - size + 1)
        value = self.rng.choice(values)
        data[pos:pos + size] = struct.pack(code, value)
        return data, f"int{size * 8} at {pos}={value}"

    def truncate(self, data: bytearray, seed: Seed) -> tuple[bytearray, str]:
        keep = self.rng.randrange(4, len(data))
        return self._refit(data[:keep]), f"truncated to {keep - 4}"

    def extend(self, data: bytearray, seed: Seed) -> tuple[bytearray, str]:
        n = self.rng.choice((1, 7, 100, 5000))
        data += self.rng.randbytes(n) if self.rng.random() < 0.5 else b"\xff" * n
        return self._refit(data), f"extended by {n}"

    def size_prefix(self, data: bytearray, seed: Seed) -> tuple[bytearray, str]:
        real = len(data) - 4
        value = self.rng.choice((real - 1, real + 1, real + 100, 0, -1, 0x7FFFFFFF, 100 * 1024 * 1024))
        data[0:4] = struct.pack(">i", value)
        return data, f"size prefix {value} (real {real})"

    def splice(self, data: bytearray, seed: Seed) -> tuple[bytearray, str]:
        other = self.rng.choice(self.seeds)
        cut = self.rng.randrange(4, len(data))
        header = len(encode_request_header(other.api_key, other.version, 0, "fuzz", other.flexible))
        tail = other.body[max(0, self.rng.randrange(len(other.body) + 1) - header):]
        name = HANDLERS[other.api_key].api.name
        return self._refit(data[:cut] + tail), f"spliced at {cut} with {name} v{other.version}"

    def header_api(self, data: bytearray, seed: Seed) -> tuple[bytearray, str]:
        rng = self.rng
        if rng.random() < 0.5:
            key = rng.choice(sorted(HANDLERS))
            data[4:6] = struct.pack(">h", key)
            return data, f"api key -> {key}"
        handler = HANDLERS[seed.api_key]
        version = rng.choice((handler.min_version, handler.max_version, handler.max_version + 1, -1,
                              rng.randint(handler.min_version, handler.max_version)))
        data[6:8] = struct.pack(">h", version)
        return data, f"version -> {version}"

    def random_bytes(self, data: bytearray, seed: Seed) -> tuple[bytearray, str]:
        pos = self.rng.randrange(4, len(data))
        n = min(self.rng.choice((1, 4, 16)), len(data) - pos)
        data[pos:pos + n] = self.rng.randbytes(n)
        return data, f"{n} random bytes at {pos}"


def _slots(obj: Any, cls: type[Struct], version: int, path: str) -> Iterator[tuple[Any, Field, str]]:
    """Every (object, field, path) of a decoded request, nested structs included."""
    for f in cls._fields:
        if not f.present_in(version) or f.tag is not None:
            continue
        yield obj, f, f"{path}.{f.name}"
        value = getattr(obj, f.name)
        if f.is_struct:
            sub = getattr(cls, f.type)
            items = value if f.is_array else [value]
            for i, item in enumerate(items or ()):
                if item is not None:
                    yield from _slots(item, sub, version, f"{path}.{f.name}[{i}]" if f.is_array else path)


# ---------------------------------------------------------------------- delivery
def broker_view(stream: bytes, max_size: int = 100 * 1024 * 1024) -> tuple[int, bool]:
    """(complete frames the broker can read, whether it must close) for a byte stream."""
    pos = 0
    complete = 0
    while pos + 4 <= len(stream):
        (size,) = struct.unpack_from(">i", stream, pos)
        if size <= 0 or size > max_size:
            return complete, True
        if pos + 4 + size > len(stream):
            return complete, False
        complete += 1
        pos += 4 + size
    return complete, False


@dataclasses.dataclass
class BatchResult:
    sent: int = 0
    answered: int = 0
    closed: int = 0
    hangs: list[list[Frame]] = dataclasses.field(default_factory=list)
    parked: int = 0


class _Conn:
    def __init__(self, sock: socket.socket, frames: list[Frame]) -> None:
        self.sock = sock
        self.frames = frames
        self.out = memoryview(b"".join(f.data for f in frames))
        stream = bytes(self.out)
        self.expected = broker_view(stream)[0] - _silent_frames(stream)
        self.inbuf = bytearray()
        self.answers = 0
        self.done = False
        self.closed = False
        self.deadline = 0.0


def send_batch(bootstrap: str, groups: list[list[Frame]], connections: int, timeout: float) -> BatchResult:
    """Send each group of frames pipelined on a connection of its own, ``connections``
    at a time; see the module doc for what counts as answered, closed, hung, parked."""
    host, port = bootstrap.rsplit(":", 1)
    result = BatchResult()
    sel = selectors.DefaultSelector()
    waiting = list(reversed(groups))
    live: list[_Conn] = []
    finished: list[_Conn] = []
    deadline = time.monotonic() + timeout

    def open_next() -> None:
        conn = _Conn(socket.create_connection((host, int(port)), timeout=5), waiting.pop())
        conn.sock.setblocking(False)
        conn.deadline = time.monotonic() + timeout
        live.append(conn)
        sel.register(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    try:
        while waiting or live:
            while waiting and len(live) < connections:
                open_next()
            for key, events in sel.select(timeout=0.2):
                conn = key.data
                if events & selectors.EVENT_WRITE and conn.out:
                    try:
                        n = conn.sock.send(conn.out[:262144])
                        conn.out = conn.out[n:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        conn.out = memoryview(b"")
                    if not conn.out:
                        sel.modify(conn.sock, selectors.EVENT_READ, conn)
                        # nothing (more) to wait for: acks=0 produce, incomplete last frame
                        conn.done = conn.answers >= conn.expected
                if events & selectors.EVENT_READ:
                    try:
                        data = conn.sock.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        conn.closed = conn.done = True
                    else:
                        conn.inbuf += data
                        conn.answers += _count_frames(conn.inbuf)
                        conn.done = conn.answers >= conn.expected and not conn.out
            now = time.monotonic()
            for conn in [c for c in live if c.done or now > c.deadline]:
                live.remove(conn)
                sel.unregister(conn.sock)
                conn.sock.close()
                finished.append(conn)
            if now > deadline + timeout:  # a broker too slow for anything: stop here
                break
        for conn in finished + live:
            result.sent += len(conn.frames)
            result.answered += conn.answers
            if conn.closed:
                result.closed += 1
            elif not conn.done:
                if any(f.api_key in PARKING_APIS for f in conn.frames):
                    result.parked += 1
                else:
                    result.hangs.append(conn.frames)
    finally:
        sel.close()
        for conn in live:
            conn.sock.close()
    return result


def _silent_frames(stream: bytes) -> int:
    """How many complete frames of ``stream`` are Produce requests with acks=0, which a
    broker does not answer (as Kafka, it answers nothing unless it closes the socket)."""
    codec = HANDLERS[0].codec
    silent = 0
    pos = 0
    while pos + 4 <= len(stream):
        (size,) = struct.unpack_from(">i", stream, pos)
        if size <= 0 or pos + 4 + size > len(stream):
            break
        data = stream[pos + 4:pos + 4 + size]
        pos += 4 + size
        if len(data) < 8 or struct.unpack_from(">h", data)[0] != 0:
            continue
        version = struct.unpack_from(">h", data, 2)[0]
        try:
            header = decode_request_header(data, codec.api.is_flexible(version))
            silent += codec.decode_request(version, data, header.header_size).acks == 0
        except Exception:  # noqa: BLE001, S112 - undecodable: the broker closes instead
            continue
    return silent


def _count_frames(buf: bytearray) -> int:
    """Consume whole response frames from ``buf``; how many there were."""
    n = 0
    while len(buf) >= 4:
        (size,) = struct.unpack_from(">i", buf, 0)
        if len(buf) < 4 + size:
            break
        del buf[: 4 + size]
        n += 1
    return n


# --------------------------------------------------------------------- the fuzzer
@dataclasses.dataclass
class Finding:
    kind: str  # "traceback", "hang", "crash", "rss"
    detail: str
    frames: list[Frame] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Stats:
    frames: int = 0
    batches: int = 0
    answered: int = 0
    closed_connections: int = 0
    parked: int = 0
    crashes: int = 0
    hangs: int = 0
    tracebacks: int = 0
    peak_rss_mb: float = 0.0
    seconds: float = 0.0
    findings: list[Finding] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        rate = self.frames / self.seconds if self.seconds else 0.0
        return (f"frames sent {self.frames}, crashes {self.crashes}, hangs {self.hangs}, "
                f"tracebacks {self.tracebacks}, peak RSS {self.peak_rss_mb:.0f} MB, "
                f"{rate:.0f} frames/s ({self.answered} answers, {self.closed_connections} "
                f"connections closed by the broker, {self.parked} parked)")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc."""
    text = Path(f"/proc/{pid}/status").read_text()
    values = {k: int(v.split()[0]) / 1024 for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", text, re.M)}
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def tracebacks_in(text: str) -> list[str]:
    """The tail (last 6 lines) of each traceback or error report in a log excerpt."""
    found = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not any(m in lines[i] for m in TRACEBACK_MARKERS):
            i += 1
            continue
        end = i + 1
        while end < len(lines) and (
            lines[end].startswith((" ", "Traceback", "During", "The above", "\t")) or not lines[end].strip()
        ):
            end += 1
        if end < len(lines) and any(ln.startswith("Traceback") for ln in lines[i:end]):
            end += 1  # the exception's own line
        found.append("\n".join(lines[max(i, end - 6):end]))
        i = end
    return found


def signature(tail: str) -> str:
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    where = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
    last = lines[-1] if lines else ""
    return (where[-1] if where else "") + " | " + re.sub(r"\d+", "N", last)[:120]


class Fuzzer:
    """Runs batches of mutated frames against ``broker`` (a ``broker_process.Broker``)."""

    def __init__(self, broker: Any, seed: int, *, batch_size: int = 500, connections: int = 16,
                 hang_timeout: float = 20.0, rss_limit_mb: float = 1024.0,
                 roundtrip_every: int = 10, replay: bool = True, exclude: str | None = None,
                 max_hangs: int | None = 50) -> None:
        self.broker = broker
        self.rng = random.Random(seed)
        self.seeds = seed_frames(self.rng)
        self.mutator = Mutator(self.seeds, self.rng)
        self.batch_size = batch_size
        self.connections = connections
        self.hang_timeout = hang_timeout
        self.rss_limit_mb = rss_limit_mb
        self.roundtrip_every = roundtrip_every
        self.replay = replay
        self.exclude = re.compile(exclude) if exclude else None
        self.max_hangs = max_hangs
        self.stats = Stats()
        self.log_mark = broker.log_size()
        self.known: set[str] = set()

    def prepare(self) -> None:
        """Topics and a group the seeds name, so requests reach the handlers' depths."""
        from .kafka_helpers import create_topic

        for t in TOPICS:
            create_topic(self.broker.bootstrap, t, partitions=2)

    def run(self, frames: int, deadline_s: float | None = None, progress: Any = None) -> Stats:
        start = time.monotonic()
        while self.stats.frames < frames:
            if deadline_s is not None and time.monotonic() - start > deadline_s:
                break
            n = min(self.batch_size, frames - self.stats.frames)
            self.run_batch(self.make_batch(n))
            self.stats.seconds = time.monotonic() - start
            if progress is not None:
                progress(self.stats)
            if self.stats.crashes or (self.max_hangs is not None and self.stats.hangs > self.max_hangs):
                break
        self.stats.seconds = time.monotonic() - start
        return self.stats

    def make_batch(self, n: int) -> list[list[Frame]]:
        """``n`` mutated frames in groups of 1-4 pipelined on one connection."""
        groups: list[list[Frame]] = []
        left = n
        while left > 0:
            k = min(left, self.rng.choice((1, 1, 2, 3, 4)))
            group = [self.mutator.one() for _ in range(k)]
            if self.exclude is not None:
                group = [f for f in group if not self.exclude.search(f.label)]
            if group:
                groups.append(group)
            left -= k
        return groups

    def run_batch(self, batch: list[list[Frame]]) -> None:
        st = self.stats
        result = send_batch(self.broker.bootstrap, batch, self.connections, self.hang_timeout)
        st.frames += result.sent
        st.batches += 1
        st.answered += result.answered
        st.closed_connections += result.closed
        st.parked += result.parked
        for group in result.hangs:
            st.hangs += 1
            again = send_batch(self.broker.bootstrap, [group], 1, self.hang_timeout).hangs
            detail = "unanswered and not closed" + (", again when replayed alone" if again else
                                                    ", answered when replayed alone")
            st.findings.append(Finding("hang", detail, group))
        if not self.broker.is_running():
            st.crashes += 1
            st.findings.append(Finding("crash", f"exit code {self.broker.proc.returncode}: "
                                       + self.broker.log_text(self.log_mark)[-2000:]))
            return
        if not self._answers_api_versions():
            st.crashes += 1
            st.findings.append(Finding("crash", f"no ApiVersions answer within {self.hang_timeout:.0f}s"))
            return
        current, peak = rss_mb(self.broker.pid)
        st.peak_rss_mb = max(st.peak_rss_mb, peak)
        if current > self.rss_limit_mb:
            st.findings.append(Finding("rss", f"RSS {current:.0f} MB over {self.rss_limit_mb:.0f} MB"))
        if self.roundtrip_every and st.batches % self.roundtrip_every == 0:
            from .kafka_helpers import roundtrip_ok

            roundtrip_ok(self.broker.bootstrap)
        tails = self._new_tracebacks()
        if tails:
            st.tracebacks += len(tails)
            fresh = [t for t in tails if signature(t) not in self.known]
            for t in fresh:
                self.known.add(signature(t))
            if fresh and self.replay:
                self._replay(batch, {signature(t) for t in fresh})
            elif fresh:
                st.findings += [Finding("traceback", t) for t in fresh]

    def _answers_api_versions(self) -> bool:
        try:
            with raw.connect(self.broker.bootstrap, timeout=self.hang_timeout) as sock:
                sock.sendall(raw.request(raw.API_VERSIONS, 0, 1))
                return raw.read_response(sock) is not None
        except OSError:
            return False

    def _new_tracebacks(self) -> list[str]:
        size = self.broker.log_size()
        text = self.broker.log_text(self.log_mark)
        self.log_mark = size
        return tracebacks_in(text)

    def _replay(self, batch: list[list[Frame]], wanted: set[str]) -> None:
        """Send the batch's frames one at a time to name the one behind each traceback."""
        for fr in (f for group in batch for f in group):
            if not wanted:
                return
            send_batch(self.broker.bootstrap, [[fr]], 1, min(self.hang_timeout, 5.0))
            if not self.broker.is_running():
                return
            for tail in self._new_tracebacks():
                sig = signature(tail)
                if sig in wanted:
                    wanted.discard(sig)
                    self.stats.findings.append(Finding("traceback", tail, [fr]))
        for sig in wanted:  # caused by the interplay of frames, not one alone
            self.stats.findings.append(Finding("traceback", sig))


def describe(finding: Finding) -> str:
    out = f"[{finding.kind}] {finding.detail}"
    for fr in finding.frames:
        data = fr.data
        shown = data.hex() if len(data) <= 400 else data[:400].hex() + "..."
        out += f"\n  frame: {fr.label}\n    bytes ({len(data)}): {shown}"
    return out
