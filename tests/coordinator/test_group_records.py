"""``__consumer_offsets`` record formats: round trips, Kafka's byte layout, old versions."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.coordinator.group.hashing import java_abs, java_string_hash, partition_for
from moldau.coordinator.group.records import (
    ConsumerKey,
    ConsumerMemberValue,
    CurrentAssignmentValue,
    GroupKey,
    GroupValue,
    MemberValue,
    OffsetKey,
    OffsetValue,
    RecordFormatError,
    decode_consumer_assignment,
    decode_consumer_subscription,
    decode_current_assignment_value,
    decode_epoch_value,
    decode_group_value,
    decode_key,
    decode_member_value,
    decode_offset_value,
    decode_target_member_value,
    encode_consumer_assignment,
    encode_consumer_group_value,
    encode_consumer_key,
    encode_current_assignment_value,
    encode_group_key,
    encode_group_value,
    encode_member_value,
    encode_offset_key,
    encode_offset_value,
    encode_target_member_value,
    subscribed_topics,
)

names = st.text(min_size=0, max_size=40)


@given(names, names, st.integers(0, 2**31 - 1))
def test_offset_key_round_trip(group, topic, partition):
    assert decode_key(encode_offset_key(group, topic, partition)) == OffsetKey(group, topic, partition)


@given(names)
def test_group_key_round_trip(group):
    assert decode_key(encode_group_key(group)) == GroupKey(group)


@given(st.integers(-1, 2**63 - 1), st.integers(-1, 2**31 - 1), names, st.integers(-1, 2**62))
def test_offset_value_round_trip(offset, epoch, metadata, ts):
    value = OffsetValue(offset, epoch, metadata, ts)
    assert decode_offset_value(encode_offset_value(value)) == value


def test_offset_commit_layout_is_kafkas():
    # key: version 1, group, topic, partition; value v3: offset, epoch, metadata, timestamp.
    assert encode_offset_key("g", "t", 2) == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x02"
    value = encode_offset_value(OffsetValue(7, 3, "m", 1000))
    assert value == b"\x00\x03" + struct.pack(">qi", 7, 3) + b"\x00\x01m" + struct.pack(">q", 1000)
    assert encode_group_key("g") == b"\x00\x02\x00\x01g"


def test_old_offset_values_decode():
    v0 = b"\x00\x00" + struct.pack(">q", 5) + b"\x00\x02hi" + struct.pack(">q", 77)
    assert decode_offset_value(v0) == OffsetValue(5, -1, "hi", 77, -1)
    v1 = b"\x00\x01" + struct.pack(">q", 5) + b"\x00\x00" + struct.pack(">qq", 77, 99)
    assert decode_offset_value(v1) == OffsetValue(5, -1, "", 77, 99)
    with pytest.raises(RecordFormatError):
        decode_offset_value(b"\x00\x09")
    with pytest.raises(RecordFormatError):
        decode_offset_value(b"\x00\x03\x00")


def test_other_record_kinds_are_skipped():
    # Key version 4 (KIP-848 partition metadata, replaced in Kafka 4.1) and share or
    # streams group records are not ours to load.
    assert decode_key(b"\x00\x04\x00\x01g") is None
    assert decode_key(b"\x00\x0a\x00\x01g") is None


def test_kip848_records_round_trip():
    t1, t2 = uuid.UUID(int=7), uuid.uuid4()
    assert decode_key(encode_consumer_key(3, "g")) == ConsumerKey(3, "g")
    assert decode_key(encode_consumer_key(8, "g", "m")) == ConsumerKey(8, "g", "m")
    assert encode_consumer_key(5, "g", "m") == b"\x00\x05\x00\x01g\x00\x01m"
    assert decode_epoch_value(encode_consumer_group_value(12)) == 12
    # Flexible v0: version, epoch, empty tagged fields.
    assert encode_consumer_group_value(1) == b"\x00\x00\x00\x00\x00\x01\x00"
    member = ConsumerMemberValue("inst", None, "client", "/1.2.3.4", ["a", "b"], None, 30000, "range")
    assert decode_member_value(encode_member_value(member)) == member
    target = {t1: {0, 3}, t2: {1}}
    assert decode_target_member_value(encode_target_member_value(target)) == target
    current = CurrentAssignmentValue(5, 4, 1, {t1: {0}}, {t2: {2, 9}})
    assert decode_current_assignment_value(encode_current_assignment_value(current)) == current
    # Tagged fields written by newer Kafka versions are skipped.
    tagged = b"\x00\x00\x00\x00\x00\x07\x01\x00\x08" + b"\x00" * 8
    assert decode_epoch_value(tagged) == 7


member = st.builds(
    MemberValue,
    names,
    st.none() | names,
    names,
    names,
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    st.binary(max_size=30),
    st.binary(max_size=30),
)


@given(names, st.integers(0, 2**31 - 1), st.none() | names, st.none() | names, st.integers(-1, 2**60), st.lists(member, max_size=4))
def test_group_value_round_trip(protocol_type, generation, protocol, leader, ts, members):
    value = GroupValue(protocol_type, generation, protocol, leader, ts, members)
    assert decode_group_value(encode_group_value(value)) == value


def test_subscribed_topics_from_consumer_protocol():
    sub = b"\x00\x01" + struct.pack(">i", 2) + b"\x00\x01a" + b"\x00\x02bb" + struct.pack(">i", -1)
    assert subscribed_topics(sub) == {"a", "bb"}
    assert subscribed_topics(b"junk") == set()


def test_classic_member_metadata_is_tagged_field_0():
    """ConsumerGroupMemberMetadataValue's ClassicMemberMetadata (online migration) rides
    in tagged field 0; a member without it encodes no tags, as Kafka writes it."""
    plain = ConsumerMemberValue(None, None, "c", "h", ["t"], None, 300, "uniform")
    assert encode_member_value(plain).endswith(b"\x00")
    classic = ConsumerMemberValue("i", None, "c", "h", ["t"], None, 300, None, (6000, [("range", b"\x00\x01x")]))
    encoded = encode_member_value(classic)
    assert decode_member_value(encoded) == classic
    assert decode_member_value(encode_member_value(plain)) == plain


def test_embedded_consumer_protocol():
    owned = struct.pack(">i", 1) + b"\x00\x01a" + struct.pack(">ii", 1, 3)
    sub_v1 = b"\x00\x01" + struct.pack(">i", 1) + b"\x00\x01a" + struct.pack(">i", -1) + owned
    parsed = decode_consumer_subscription(sub_v1)
    assert (parsed.version, parsed.topics, parsed.owned) == (1, ["a"], {"a": {3}})
    with pytest.raises(RecordFormatError):
        decode_consumer_subscription(b"\x00")
    assignment = encode_consumer_assignment(3, {"a": {2, 0}, "b": {1}})
    assert assignment[:2] == b"\x00\x03"
    assert decode_consumer_assignment(assignment) == {"a": {0, 2}, "b": {1}}
    assert decode_consumer_assignment(b"junk") == {}


def test_java_hash():
    assert java_string_hash("group") == 98629247
    assert java_string_hash("") == 0
    assert java_string_hash("polygenelubricants") == -(2**31)
    assert java_abs(-(2**31)) == 0
    assert java_abs(-5) == 5
    assert partition_for("polygenelubricants", 50) == 0
    # What Kafka's own formula prints for these ids (abs(id.hashCode()) % 50 in jshell).
    assert partition_for("my-group", 50) == 12
    assert partition_for("kafka-txn-0", 50) == 30
    # Characters outside the BMP count as their two UTF-16 code units.
    assert java_string_hash("\U0001F600") == 0xD83D * 31 + 0xDE00


@given(st.text(max_size=30))
def test_java_hash_matches_definition(text):
    units = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (h * 31 + int.from_bytes(units[i : i + 2], "big")) % 2**32
    expected = h - 2**32 if h >= 2**31 else h
    assert java_string_hash(text) == expected
    assert 0 <= partition_for(text, 50) < 50
