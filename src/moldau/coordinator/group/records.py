"""Kafka's record formats in ``__consumer_offsets``, encoded and decoded (sans-IO).

Theory of operation: every record key starts with an int16 that says what the record
is (Kafka's "key version": 0 and 1 are committed offsets, 2 is group metadata); every
value starts with an int16 schema version. We write what Kafka 3.x/4.x writes for
classic groups -- OffsetCommitKey (key version 1) with OffsetCommitValue v3, and
GroupMetadataKey (key version 2) with GroupMetadataValue v3 -- so that a log written
here reads as Kafka's and tools that decode ``__consumer_offsets`` understand it. A
record with a null value is a tombstone: the offset or the group was deleted.

Reading accepts every non-flexible version (values 0-3) since the compacted log may
hold older records; keys of other kinds (KIP-848 and share-group records) are skipped
by the loader, which is why :func:`decode_key` returns None for them.

All formats are non-flexible: int16-length strings (-1 for null), int32-length bytes,
int32-count arrays, big-endian integers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_VALUE_VERSION = 3


class RecordFormatError(ValueError):
    """The bytes are not a record of ``__consumer_offsets`` as Kafka writes them."""


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group: str


@dataclass(slots=True)
class OffsetValue:
    """A committed offset (OffsetCommitValue): what OffsetFetch returns."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1
    expire_timestamp: int = -1


@dataclass(slots=True)
class MemberValue:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout: int
    session_timeout: int
    subscription: bytes
    assignment: bytes


@dataclass(slots=True)
class GroupValue:
    """A classic group's metadata (GroupMetadataValue), written when a generation starts."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int = -1
    members: list[MemberValue] = field(default_factory=list)


# -- writer ---------------------------------------------------------------------------


class _Writer:
    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def i16(self, v: int) -> None:
        self.buf += _I16.pack(v)

    def i32(self, v: int) -> None:
        self.buf += _I32.pack(v)

    def i64(self, v: int) -> None:
        self.buf += _I64.pack(v)

    def string(self, v: str | None) -> None:
        if v is None:
            self.i16(-1)
            return
        data = v.encode()
        self.i16(len(data))
        self.buf += data

    def bytes_(self, v: bytes | None) -> None:
        if v is None:
            self.i32(-1)
            return
        self.i32(len(v))
        self.buf += v


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise RecordFormatError("record ends early")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def i16(self) -> int:
        value: int = _I16.unpack(self._take(2))[0]
        return value

    def i32(self) -> int:
        value: int = _I32.unpack(self._take(4))[0]
        return value

    def i64(self) -> int:
        value: int = _I64.unpack(self._take(8))[0]
        return value

    def string(self) -> str | None:
        n = self.i16()
        if n == -1:
            return None
        return self._take(n).decode()

    def bytes_(self) -> bytes | None:
        n = self.i32()
        if n == -1:
            return None
        return bytes(self._take(n))


# -- keys -----------------------------------------------------------------------------


def encode_offset_key(group: str, topic: str, partition: int) -> bytes:
    w = _Writer()
    w.i16(OFFSET_COMMIT_KEY_VERSION)
    w.string(group)
    w.string(topic)
    w.i32(partition)
    return bytes(w.buf)


def encode_group_key(group: str) -> bytes:
    w = _Writer()
    w.i16(GROUP_METADATA_KEY_VERSION)
    w.string(group)
    return bytes(w.buf)


def decode_key(data: bytes) -> OffsetKey | GroupKey | None:
    """The key of a ``__consumer_offsets`` record; None for record kinds we do not keep."""
    r = _Reader(data)
    version = r.i16()
    if version in (0, 1):
        group, topic = r.string(), r.string()
        if group is None or topic is None:
            raise RecordFormatError("null group or topic in an offset commit key")
        return OffsetKey(group, topic, r.i32())
    if version == 2:
        group = r.string()
        if group is None:
            raise RecordFormatError("null group in a group metadata key")
        return GroupKey(group)
    return None


# -- values ---------------------------------------------------------------------------


def encode_offset_value(value: OffsetValue) -> bytes:
    w = _Writer()
    w.i16(OFFSET_COMMIT_VALUE_VERSION)
    w.i64(value.offset)
    w.i32(value.leader_epoch)
    w.string(value.metadata)
    w.i64(value.commit_timestamp)
    return bytes(w.buf)


def decode_offset_value(data: bytes) -> OffsetValue:
    r = _Reader(data)
    version = r.i16()
    if not 0 <= version <= 3:
        raise RecordFormatError(f"OffsetCommitValue version {version} is not supported")
    offset = r.i64()
    leader_epoch = r.i32() if version >= 3 else -1
    metadata = r.string() or ""
    commit_timestamp = r.i64()
    expire_timestamp = r.i64() if version == 1 else -1
    return OffsetValue(offset, leader_epoch, metadata, commit_timestamp, expire_timestamp)


def encode_group_value(value: GroupValue) -> bytes:
    w = _Writer()
    w.i16(GROUP_METADATA_VALUE_VERSION)
    w.string(value.protocol_type)
    w.i32(value.generation)
    w.string(value.protocol)
    w.string(value.leader)
    w.i64(value.current_state_timestamp)
    w.i32(len(value.members))
    for m in value.members:
        w.string(m.member_id)
        w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.i32(m.rebalance_timeout)
        w.i32(m.session_timeout)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
    return bytes(w.buf)


def decode_group_value(data: bytes) -> GroupValue:
    r = _Reader(data)
    version = r.i16()
    if not 0 <= version <= 3:
        raise RecordFormatError(f"GroupMetadataValue version {version} is not supported")
    protocol_type = r.string() or ""
    generation = r.i32()
    protocol = r.string()
    leader = r.string()
    timestamp = r.i64() if version >= 2 else -1
    members = []
    for _ in range(r.i32()):
        member_id = r.string() or ""
        instance_id = r.string() if version >= 3 else None
        client_id = r.string() or ""
        client_host = r.string() or ""
        rebalance_timeout = r.i32() if version >= 1 else -1
        session_timeout = r.i32()
        if rebalance_timeout == -1:
            rebalance_timeout = session_timeout
        subscription = r.bytes_() or b""
        assignment = r.bytes_() or b""
        members.append(
            MemberValue(
                member_id, instance_id, client_id, client_host, rebalance_timeout, session_timeout,
                subscription, assignment,
            )
        )
    return GroupValue(protocol_type, generation, protocol, leader, timestamp, members)


# -- the consumer protocol's embedded subscription ------------------------------------


def subscribed_topics(subscription: bytes) -> set[str]:
    """Topic names in a ConsumerProtocolSubscription (any version); empty if unreadable.

    Only needed to answer OffsetDelete (GROUP_SUBSCRIBED_TO_TOPIC) and to know which
    offsets of a live group may expire; a foreign protocol type simply yields nothing.
    """
    try:
        r = _Reader(subscription)
        r.i16()
        topics = set()
        for _ in range(r.i32()):
            name = r.string()
            if name is not None:
                topics.add(name)
        return topics
    except (RecordFormatError, UnicodeDecodeError, struct.error):
        return set()
