"""produce_entries counts what the real decoder would find, at every Produce version,
and stops early past its limit; a body that does not parse counts as past the limit."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.protocol.codec import MessageCodec
from moldau.protocol.messages import ALL_APIS
from moldau.protocol.peek import produce_entries

PRODUCE = ALL_APIS[0]
CODEC = MessageCodec(PRODUCE)
Topic = CODEC.Request.of("topic_data")
Partition = Topic.of("partition_data")


def body(version: int, shape: list[list[int]]) -> bytes:
    """A Produce request with one topic per item, each with partitions of those sizes."""
    topics = [
        Topic(
            name=f"t{i}",
            topic_id=uuid.UUID(int=i + 1),
            partition_data=[
                Partition(index=j, records=None if size < 0 else b"x" * size) for j, size in enumerate(sizes)
            ],
        )
        for i, sizes in enumerate(shape)
    ]
    request = CODEC.Request(transactional_id="tx" if version >= 3 else None, acks=-1, timeout_ms=1, topic_data=topics)
    return CODEC.encode_request(version, request)


@pytest.mark.parametrize("version", range(PRODUCE.min_version, PRODUCE.max_version + 1))
@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.lists(st.integers(-1, 300), max_size=6), max_size=5))
def test_counts_every_topic_and_partition(version, shape):
    data = body(version, shape)
    expected = len(shape) + sum(len(sizes) for sizes in shape)
    flexible = PRODUCE.is_flexible(version)
    assert produce_entries(data, 0, version, flexible, 10_000) == expected
    decoded = CODEC.decode_request(version, bytearray(data))
    assert len(decoded.topic_data) + sum(len(t.partition_data) for t in decoded.topic_data) == expected


@pytest.mark.parametrize("version", [3, 9, 13])
def test_stops_just_past_the_limit(version):
    data = body(version, [[0] * 5000])
    assert produce_entries(data, 0, version, PRODUCE.is_flexible(version), 100) == 101


@pytest.mark.parametrize("version", [3, 9])
def test_a_truncated_body_counts_as_past_the_limit(version):
    data = body(version, [[10, 10], [10]])
    assert produce_entries(data[: len(data) // 2], 0, version, PRODUCE.is_flexible(version), 50) == 51
