"""Kafka's record formats in ``__consumer_offsets``, encoded and decoded (sans-IO).

Theory of operation: every record key starts with an int16 that says what the record
is (Kafka's "key version": 0 and 1 are committed offsets, 2 is group metadata); every
value starts with an int16 schema version. We write what Kafka 3.x/4.x writes for
classic groups -- OffsetCommitKey (key version 1) with OffsetCommitValue v3, and
GroupMetadataKey (key version 2) with GroupMetadataValue v3 -- so that a log written
here reads as Kafka's and tools that decode ``__consumer_offsets`` understand it. A
record with a null value is a tombstone: the offset or the group was deleted.

Reading accepts every non-flexible version (values 0-3) since the compacted log may
hold older records. KIP-848 groups are kept as Kafka keeps them: ConsumerGroupMetadata
(key version 3), member metadata (5), the target assignment's epoch (6) and per-member
target (7), and each member's current assignment (8); the partition metadata record
(4, replaced by a hash in Kafka 4.1) and share and streams groups' records are
skipped, which is why :func:`decode_key` returns None for them.

All formats are non-flexible: int16-length strings (-1 for null), int32-length bytes,
int32-count arrays, big-endian integers.
"""

from __future__ import annotations

import struct
import uuid
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


def decode_key(data: bytes) -> OffsetKey | GroupKey | ConsumerKey | None:
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
    if version in (CONSUMER_GROUP_METADATA, *_MEMBER_KINDS, CONSUMER_TARGET_METADATA):
        return _decode_consumer_key(version, r)
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


@dataclass(frozen=True, slots=True)
class EmbeddedSubscription:
    """A ConsumerProtocolSubscription: its version, topics and (v1+) owned partitions."""

    version: int
    topics: list[str]
    owned: dict[str, set[int]]


def decode_consumer_subscription(data: bytes) -> EmbeddedSubscription:
    """Read a ConsumerProtocolSubscription (v0-v3); RecordFormatError if malformed."""
    try:
        r = _Reader(data)
        version = r.i16()
        topics = [t for t in (r.string() for _ in range(r.i32())) if t is not None]
        r.bytes_()  # user data
        owned: dict[str, set[int]] = {}
        if version >= 1:
            for _ in range(max(r.i32(), 0)):
                topic = r.string() or ""
                owned.setdefault(topic, set()).update(r.i32() for _ in range(max(r.i32(), 0)))
        return EmbeddedSubscription(version, topics, owned)
    except (UnicodeDecodeError, struct.error) as exc:
        raise RecordFormatError(f"malformed consumer subscription: {exc}") from None


def decode_consumer_assignment(data: bytes) -> dict[str, set[int]]:
    """Topic -> partitions of a ConsumerProtocolAssignment (any version); empty if unreadable."""
    try:
        r = _Reader(data)
        r.i16()
        assigned: dict[str, set[int]] = {}
        for _ in range(max(r.i32(), 0)):
            topic = r.string() or ""
            assigned.setdefault(topic, set()).update(r.i32() for _ in range(max(r.i32(), 0)))
        return assigned
    except (RecordFormatError, UnicodeDecodeError, struct.error):
        return {}


def encode_consumer_assignment(version: int, assigned: dict[str, set[int]]) -> bytes:
    """A ConsumerProtocolAssignment of ``version`` (its fields are the same in v0-v3)."""
    w = _Writer()
    w.i16(version)
    w.i32(len(assigned))
    for topic in sorted(assigned):
        w.string(topic)
        w.i32(len(assigned[topic]))
        for p in sorted(assigned[topic]):
            w.i32(p)
    w.bytes_(None)
    return bytes(w.buf)


# -- KIP-848 consumer group records (key versions 3, 5, 6, 7, 8) ---------------------
#
# Keys are non-flexible like the others; values are flexible version 0: compact
# strings and arrays (unsigned varint length + 1, 0 for null), 16-byte uuids and a
# tagged-field section after every struct, which we write empty and skip on read.

CONSUMER_GROUP_METADATA = 3
CONSUMER_MEMBER_METADATA = 5
CONSUMER_TARGET_METADATA = 6
CONSUMER_TARGET_MEMBER = 7
CONSUMER_CURRENT_ASSIGNMENT = 8
_MEMBER_KINDS = (CONSUMER_MEMBER_METADATA, CONSUMER_TARGET_MEMBER, CONSUMER_CURRENT_ASSIGNMENT)

# Kafka's MemberState codes in ConsumerGroupCurrentMemberAssignmentValue.
MEMBER_STATE_CODES = {"STABLE": 0, "UNREVOKED_PARTITIONS": 1, "UNRELEASED_PARTITIONS": 2}
MEMBER_STATE_NAMES = {v: k for k, v in MEMBER_STATE_CODES.items()}

TopicPartitions = dict[uuid.UUID, set[int]]


@dataclass(frozen=True, slots=True)
class ConsumerKey:
    """A KIP-848 record key: its kind (key version), the group and maybe a member."""

    kind: int
    group: str
    member: str | None = None


@dataclass(slots=True)
class ConsumerMemberValue:
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: list[str]
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None
    #: tagged field 0, ClassicMemberMetadata: (session timeout, [(protocol, metadata)])
    #: for a member speaking the classic protocol (online migration), else None
    classic: tuple[int, list[tuple[str, bytes]]] | None = None


@dataclass(slots=True)
class CurrentAssignmentValue:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: TopicPartitions
    pending_revocation: TopicPartitions


def encode_consumer_key(kind: int, group: str, member: str | None = None) -> bytes:
    w = _Writer()
    w.i16(kind)
    w.string(group)
    if kind in _MEMBER_KINDS:
        w.string(member or "")
    return bytes(w.buf)


def _decode_consumer_key(kind: int, r: _Reader) -> ConsumerKey:
    group = r.string() or ""
    member = (r.string() or "") if kind in _MEMBER_KINDS else None
    return ConsumerKey(kind, group, member)


class _FlexWriter(_Writer):
    __slots__ = ()

    def uvarint(self, v: int) -> None:
        while v > 0x7F:
            self.buf.append((v & 0x7F) | 0x80)
            v >>= 7
        self.buf.append(v)

    def cstring(self, v: str | None) -> None:
        if v is None:
            self.uvarint(0)
            return
        data = v.encode()
        self.uvarint(len(data) + 1)
        self.buf += data

    def uuid(self, v: uuid.UUID) -> None:
        self.buf += v.bytes

    def no_tags(self) -> None:
        self.uvarint(0)

    def topic_partitions(self, value: TopicPartitions) -> None:
        items = [(t, sorted(p)) for t, p in sorted(value.items(), key=lambda kv: kv[0].bytes) if p]
        self.uvarint(len(items) + 1)
        for topic_id, parts in items:
            self.uuid(topic_id)
            self.uvarint(len(parts) + 1)
            for p in parts:
                self.i32(p)
            self.no_tags()


class _FlexReader(_Reader):
    __slots__ = ()

    def uvarint(self) -> int:
        result = shift = 0
        while True:
            byte = self._take(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise RecordFormatError("varint too long")

    def cstring(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self._take(n - 1).decode()

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=bytes(self._take(16)))

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self._take(self.uvarint())

    def topic_partitions(self) -> TopicPartitions:
        out: TopicPartitions = {}
        for _ in range(max(self.uvarint() - 1, 0)):
            topic_id = self.uuid()
            parts = {self.i32() for _ in range(max(self.uvarint() - 1, 0))}
            self.skip_tags()
            if parts:
                out[topic_id] = parts
        return out


def _flex_reader(data: bytes) -> _FlexReader:
    r = _FlexReader(data)
    version = r.i16()
    if version != 0:
        raise RecordFormatError(f"KIP-848 record value version {version} is not supported")
    return r


def encode_consumer_group_value(epoch: int) -> bytes:
    w = _FlexWriter()
    w.i16(0)
    w.i32(epoch)
    w.no_tags()
    return bytes(w.buf)


def decode_epoch_value(data: bytes) -> int:
    """The epoch of a ConsumerGroupMetadataValue or TargetAssignmentMetadataValue."""
    return _flex_reader(data).i32()


encode_target_metadata_value = encode_consumer_group_value


def encode_member_value(v: ConsumerMemberValue) -> bytes:
    w = _FlexWriter()
    w.i16(0)
    w.cstring(v.instance_id)
    w.cstring(v.rack_id)
    w.cstring(v.client_id)
    w.cstring(v.client_host)
    w.uvarint(len(v.subscribed_topic_names) + 1)
    for name in v.subscribed_topic_names:
        w.cstring(name)
    w.cstring(v.subscribed_topic_regex)
    w.i32(v.rebalance_timeout_ms)
    w.cstring(v.server_assignor)
    if v.classic is None:
        w.no_tags()
    else:
        inner = _FlexWriter()
        session_timeout, protocols = v.classic
        inner.i32(session_timeout)
        inner.uvarint(len(protocols) + 1)
        for name, metadata in protocols:
            inner.cstring(name)
            inner.uvarint(len(metadata) + 1)
            inner.buf += metadata
            inner.no_tags()
        inner.no_tags()
        w.uvarint(1)  # one tagged field: tag 0, its size, the struct
        w.uvarint(0)
        w.uvarint(len(inner.buf))
        w.buf += inner.buf
    return bytes(w.buf)


def decode_member_value(data: bytes) -> ConsumerMemberValue:
    r = _flex_reader(data)
    instance_id, rack_id = r.cstring(), r.cstring()
    client_id, client_host = r.cstring() or "", r.cstring() or ""
    names = [r.cstring() or "" for _ in range(max(r.uvarint() - 1, 0))]
    regex = r.cstring()
    timeout = r.i32()
    assignor = r.cstring()
    classic = None
    for _ in range(r.uvarint()):
        tag, size = r.uvarint(), r.uvarint()
        if tag != 0:
            r._take(size)
            continue
        session_timeout = r.i32()
        protocols = []
        for _ in range(max(r.uvarint() - 1, 0)):
            name = r.cstring() or ""
            protocols.append((name, bytes(r._take(max(r.uvarint() - 1, 0)))))
            r.skip_tags()
        r.skip_tags()
        classic = (session_timeout, protocols)
    return ConsumerMemberValue(instance_id, rack_id, client_id, client_host, names, regex, timeout, assignor, classic)


def encode_target_member_value(assignment: TopicPartitions) -> bytes:
    w = _FlexWriter()
    w.i16(0)
    w.topic_partitions(assignment)
    w.no_tags()
    return bytes(w.buf)


def decode_target_member_value(data: bytes) -> TopicPartitions:
    return _flex_reader(data).topic_partitions()


def encode_current_assignment_value(v: CurrentAssignmentValue) -> bytes:
    w = _FlexWriter()
    w.i16(0)
    w.i32(v.member_epoch)
    w.i32(v.previous_member_epoch)
    w.buf += struct.pack(">b", v.state)
    w.topic_partitions(v.assigned)
    w.topic_partitions(v.pending_revocation)
    w.no_tags()
    return bytes(w.buf)


def decode_current_assignment_value(data: bytes) -> CurrentAssignmentValue:
    r = _flex_reader(data)
    epoch, previous = r.i32(), r.i32()
    state = struct.unpack(">b", r._take(1))[0]
    return CurrentAssignmentValue(epoch, previous, state, r.topic_partitions(), r.topic_partitions())
