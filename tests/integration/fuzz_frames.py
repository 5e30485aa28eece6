"""Request frames for the protocol fuzzer (``fuzzing.py``): valid seeds of every API
and version the broker serves, and the mutations that make them hostile. Sans-IO.

Theory of operation: :func:`seed_frames` fills each served request class from its
schema with plausible values (the fuzz topics and group, small timeouts, real record
batches from ``moldau.records.build_batch``, plain and compressed) and encodes it with
the project's encoder; :class:`Mutator` derives hostile frames from those seeds (see
its method list and the docstring of ``fuzzing.py``). Each frame carries a label, "API
vN: what was done", which the fuzzer prints with a finding and ``--exclude`` matches.
Everything is drawn from one ``random.Random``, so a seed gives the same frames.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from collections.abc import Iterator
from typing import Any

import moldau.handlers  # noqa: F401 - registers the handlers
from moldau.handlers.registry import HANDLERS
from moldau.protocol.codec import Struct
from moldau.protocol.header import encode_request_header
from moldau.protocol.schema import Field
from moldau.records.batch import Compression
from moldau.records.record import build_batch

from . import raw_kafka as raw

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
            return Frame(bytes(self.frame_of(seed, seed.body)), seed.api_key, seed.version, label + " valid")
        if r < 0.30:
            body, what = self.structural(seed)
            data = self.frame_of(seed, body)
        elif r < 0.40 and seed.api_key == 0:
            body, what = self.batch_inside(seed)
            data = self.frame_of(seed, body)
        else:
            data = self.frame_of(seed, seed.body)
            what = ""
        ops = rng.choice((1, 1, 1, 2)) if not what or rng.random() < 0.3 else 0
        for _ in range(ops):
            if len(data) < 16:
                break
            op = rng.choice(self.byte_ops)
            data, step = op(data, seed)
            what = f"{what}; {step}" if what else step
        return Frame(bytes(data), seed.api_key, seed.version, f"{label}: {what}")

    def frame_of(self, seed: Seed, body: bytes) -> bytearray:
        """``body`` framed as a request of the seed's API and version, next correlation id."""
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
