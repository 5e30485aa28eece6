"""Sans-IO parts of share-partition persistence: Kafka's merge of a state write, the
share coordinator key (FindCoordinator key type 2) and the read_committed subtraction
of aborted batches from what a fetch acquired."""

from __future__ import annotations

import uuid

from moldau.coordinator.share.manager import _without
from moldau.coordinator.share.partition import Acquired
from moldau.coordinator.share.state import (
    ShareCoordinatorKeys,
    coordinator_key,
    kafka_uuid_text,
    merge_batches,
)

AVAILABLE, ACKNOWLEDGED, ARCHIVED = 0, 2, 4


def test_a_write_replaces_what_it_covers_and_keeps_the_rest():
    old = [(10, 19, AVAILABLE, 1), (20, 29, ARCHIVED, 3)]
    assert merge_batches(old, 15, [(15, 16, ACKNOWLEDGED, 1)]) == [
        (15, 16, ACKNOWLEDGED, 1), (17, 19, AVAILABLE, 1), (20, 29, ARCHIVED, 3)]
    assert merge_batches(old, 10, [(12, 13, ACKNOWLEDGED, 1)]) == [
        (10, 11, AVAILABLE, 1), (12, 13, ACKNOWLEDGED, 1), (14, 19, AVAILABLE, 1), (20, 29, ARCHIVED, 3)]


def test_nothing_below_the_start_offset_stays():
    assert merge_batches([(10, 19, AVAILABLE, 1)], 25, []) == []
    assert merge_batches([(10, 19, AVAILABLE, 1)], 12, [(5, 8, ARCHIVED, 1)]) == [(12, 19, AVAILABLE, 1)]


def test_coordinator_key_uses_kafkas_uuid_text():
    topic_id = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
    # Kafka's Uuid.toString(): URL-safe base64 of the 16 bytes, no padding
    assert kafka_uuid_text(topic_id) == "a6e4EJ2tEdGAtADAT9QwyA"
    key = coordinator_key("g:1", topic_id, 7)
    assert key == "g:1:a6e4EJ2tEdGAtADAT9QwyA:7"
    assert ShareCoordinatorKeys.parse(key) == ("g:1", topic_id, 7)
    assert ShareCoordinatorKeys.parse(f"g:{topic_id}:0") == ("g", topic_id, 0)


def test_keys_that_are_not_share_keys_are_refused():
    for key in ("group", "group:0", ":a6e4EJ2tEdGAtADAT9QwyA:0", "g:not-a-uuid:0", "g:a6e4EJ2tEdGAtADAT9QwyA:x"):
        assert ShareCoordinatorKeys.parse(key) is None


def test_aborted_batches_leave_the_acquired_ranges():
    acquired = [Acquired(0, 99, 1), Acquired(100, 149, 2)]
    got = _without(acquired, [(20, 29), (90, 109), (140, 149)])
    assert [(a.first, a.last, a.count) for a in got] == [
        (0, 19, 1), (30, 89, 1), (110, 139, 2)]
    assert _without([Acquired(5, 9, 1)], [(0, 20)]) == []
