"""The injected error is a well-formed answer of the request's API with the error in
every place a client looks (unit: codec round trips, no broker). Cost: < 1 s."""

from __future__ import annotations

import pytest

import moldau.handlers  # noqa: F401 - registers the handlers
from moldau.handlers.registry import HANDLERS
from moldau.protocol.errors import ErrorCode
from moldau.testing.faults import api_key, error_answer, error_code

NOT_LEADER = ErrorCode.NOT_LEADER_OR_FOLLOWER


def _roundtrip(key: int, version: int, response):
    """Encode as the broker would and decode as a client would."""
    codec = HANDLERS[key].codec
    chunks = codec.encode_response_body(version, response, bytearray(4))
    data = b"".join(bytes(c) for c in chunks)
    return codec.decode_response(version, data, 4)


def _request(api: int, **fields):
    return HANDLERS[api].codec.Request(**fields)


def test_names_and_codes() -> None:
    assert api_key("Produce") == 0 and api_key("offset_commit") == 8 and api_key(1) == 1
    assert error_code("not_leader_or_follower") is NOT_LEADER and error_code(15) is ErrorCode.COORDINATOR_NOT_AVAILABLE
    with pytest.raises(ValueError):
        error_code("NO_SUCH_ERROR")
    with pytest.raises(ValueError):
        api_key("Nope")


@pytest.mark.parametrize("version", [3, 9])
def test_produce_error_per_partition(version: int) -> None:
    req_cls = HANDLERS[0].codec.Request
    Topic = req_cls.of("topic_data")
    Part = Topic.of("partition_data")
    request = _request(0, acks=-1, timeout_ms=1000, topic_data=[
        Topic(name="a", partition_data=[Part(index=0), Part(index=2)]), Topic(name="b", partition_data=[Part(index=1)])])
    got = _roundtrip(0, version, error_answer(HANDLERS[0], request, NOT_LEADER))
    seen = [(t.name, p.index, p.error_code) for t in got.responses for p in t.partition_responses]
    assert seen == [("a", 0, 6), ("a", 2, 6), ("b", 1, 6)]


def test_fetch_error_per_partition_not_top_level() -> None:
    req_cls = HANDLERS[1].codec.Request
    Topic = req_cls.of("topics")
    Part = Topic.of("partitions")
    request = _request(1, topics=[Topic(topic="a", partitions=[Part(partition=3)])])
    got = _roundtrip(1, 11, error_answer(HANDLERS[1], request, NOT_LEADER))
    assert got.error_code == 0  # Fetch's top-level error is about fetch sessions
    assert [(t.topic, p.partition_index, p.error_code) for t in got.responses for p in t.partitions] == [("a", 3, 6)]


def test_offset_commit_and_fetch() -> None:
    req_cls = HANDLERS[8].codec.Request
    Topic = req_cls.of("topics")
    Part = Topic.of("partitions")
    request = _request(8, group_id="g", topics=[Topic(name="a", partitions=[Part(partition_index=0)])])
    got = _roundtrip(8, 8, error_answer(HANDLERS[8], request, ErrorCode.COORDINATOR_NOT_AVAILABLE))
    assert [(t.name, p.partition_index, p.error_code) for t in got.topics for p in t.partitions] == [("a", 0, 15)]
    fetch = _request(9, group_id="g", topics=None)
    got = _roundtrip(9, 7, error_answer(HANDLERS[9], fetch, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS))
    assert got.error_code == 14


def test_find_coordinator_both_shapes() -> None:
    old = _roundtrip(10, 3, error_answer(HANDLERS[10], _request(10, key="g"), ErrorCode.COORDINATOR_NOT_AVAILABLE))
    assert old.error_code == 15
    new = _roundtrip(10, 4, error_answer(HANDLERS[10], _request(10, coordinator_keys=["g", "h"]),
                                         ErrorCode.COORDINATOR_NOT_AVAILABLE))
    assert [(c.key, c.error_code) for c in new.coordinators] == [("g", 15), ("h", 15)]


def test_metadata_error_per_topic() -> None:
    Topic = HANDLERS[3].codec.Request.of("topics")
    request = _request(3, topics=[Topic(name="a")])
    got = _roundtrip(3, 9, error_answer(HANDLERS[3], request, ErrorCode.LEADER_NOT_AVAILABLE))
    assert [(t.name, t.error_code) for t in got.topics] == [("a", 5)]


def test_join_group_top_level() -> None:
    got = _roundtrip(11, 5, error_answer(HANDLERS[11], _request(11, group_id="g"), ErrorCode.REBALANCE_IN_PROGRESS))
    assert got.error_code == 27


@pytest.mark.parametrize(("key", "version", "fields", "array", "key_field"), [
    (15, 5, {"groups": ["g", "h"]}, "groups", "group_id"),            # DescribeGroups
    (42, 2, {"groups_names": ["g"]}, "results", "group_id"),          # DeleteGroups
    (20, 5, {"topic_names": ["a", "b"]}, "responses", "name"),        # DeleteTopics before v6
    (65, 0, {"transactional_ids": ["x"]}, "transaction_states", "transactional_id"),
])
def test_entries_named_by_strings(key: int, version: int, fields: dict, array: str, key_field: str) -> None:
    got = _roundtrip(key, version, error_answer(HANDLERS[key], _request(key, **fields),
                                                ErrorCode.COORDINATOR_NOT_AVAILABLE))
    names = next(iter(fields.values()))
    assert [(getattr(e, key_field), e.error_code) for e in getattr(got, array)] == [(n, 15) for n in names]
