"""SharePartition (KIP-932 delivery state) in-process: ranges, not records."""

from __future__ import annotations

import pytest

from moldau.coordinator.group.assignors import MemberSpec, TopicInfo, simple_assign
from moldau.coordinator.share.partition import (
    ACCEPT,
    ACKNOWLEDGED,
    ARCHIVED,
    AVAILABLE,
    REJECT,
    RELEASE,
    SharePartition,
)
from moldau.protocol.errors import KafkaError

BATCHES = [(0, 9), (10, 19), (20, 29)]


def test_fresh_acquisition_takes_whole_batches_up_to_max_records() -> None:
    sp = SharePartition(0)
    got = sp.acquire("a", BATCHES, 15, lock_until=100.0)
    assert [(a.first, a.last, a.count) for a in got] == [(0, 19, 1)]
    assert sp.end_offset == 20 and sp.in_flight == 20
    got = sp.acquire("b", BATCHES, 500, lock_until=100.0)
    assert [(a.first, a.last) for a in got] == [(20, 29)]
    assert len(sp.spans) == 2  # one span per acquisition, not per record


def test_accept_moves_start_offset_and_merges() -> None:
    sp = SharePartition(0)
    sp.acquire("a", BATCHES, 500, lock_until=100.0)
    sp.acknowledge("a", 5, 9, ACCEPT)
    assert sp.start_offset == 0
    sp.acknowledge("a", 0, 4, ACCEPT)
    assert sp.start_offset == 10
    sp.acknowledge("a", 10, 29, ACCEPT)
    assert sp.start_offset == 30 and sp.spans == []


def test_release_redelivers_with_higher_count_then_archives_at_limit() -> None:
    sp = SharePartition(0, delivery_limit=2)
    sp.acquire("a", BATCHES[:1], 500, lock_until=100.0)
    sp.acknowledge("a", 3, 3, RELEASE)
    sp.acknowledge("a", 0, 2, ACCEPT)
    sp.acknowledge("a", 4, 9, ACCEPT)
    assert sp.start_offset == 3 and sp.first_available() == 3
    got = sp.acquire("b", BATCHES[:1], 500, lock_until=100.0)
    assert [(a.first, a.last, a.count) for a in got] == [(3, 3, 2)]
    sp.acknowledge("b", 3, 3, RELEASE)  # second delivery was the last one
    assert sp.start_offset == 10 and sp.first_available() is None


def test_reject_archives_and_foreign_ack_is_refused() -> None:
    sp = SharePartition(0)
    sp.acquire("a", BATCHES[:1], 500, lock_until=100.0)
    with pytest.raises(KafkaError):
        sp.acknowledge("b", 0, 0, ACCEPT)
    sp.acknowledge("a", 0, 0, REJECT)
    assert sp.start_offset == 1
    with pytest.raises(KafkaError):
        sp.acknowledge("a", 0, 0, ACCEPT)


def test_lock_expiry_and_member_release() -> None:
    sp = SharePartition(0)
    sp.acquire("a", BATCHES[:1], 500, lock_until=10.0)
    sp.acquire("b", BATCHES, 500, lock_until=50.0)
    assert sp.release_expired(20.0)
    assert sp.first_available() == 0
    assert sp.release_member("b")
    assert [s.state for s in sp.spans] == [AVAILABLE]
    assert (sp.spans[0].first, sp.spans[0].last) == (0, 29)


def test_max_record_locks_holds_back_fresh_records() -> None:
    sp = SharePartition(0, max_locks=15)
    sp.acquire("a", BATCHES, 500, lock_until=100.0)
    assert sp.end_offset == 10  # the next batch would pass the limit in the same fetch
    # below the limit, one more whole batch may cross it (Kafka aligns to batches)
    assert [(a.first, a.last) for a in sp.acquire("b", BATCHES, 500, lock_until=100.0)] == [(10, 19)]
    assert sp.acquire("c", BATCHES, 500, lock_until=100.0) == []  # 20 in flight >= 15
    sp.acknowledge("a", 0, 9, ACCEPT)
    assert [(a.first, a.last) for a in sp.acquire("c", BATCHES, 500, lock_until=100.0)] == [(20, 29)]


def test_state_batches_round_trip() -> None:
    sp = SharePartition(0)
    sp.acquire("a", BATCHES, 500, lock_until=100.0)
    sp.acknowledge("a", 10, 14, ACCEPT)
    sp.acknowledge("a", 15, 15, REJECT)
    again = SharePartition.restore(sp.start_offset, sp.state_batches())
    assert again.start_offset == 0 and again.end_offset == 30
    states = [(s.first, s.last, s.state, s.count) for s in again.spans]
    assert states == [(0, 9, AVAILABLE, 1), (10, 14, ACKNOWLEDGED, 1), (15, 15, ARCHIVED, 1), (16, 29, AVAILABLE, 1)]


def test_simple_assignor_shares_a_partition_between_members() -> None:
    import uuid

    t = uuid.uuid4()
    topics = {t: TopicInfo(t, "t", 1)}
    members = [MemberSpec(m, frozenset({t}), {}) for m in ("a", "b", "c")]
    result = simple_assign(members, topics)
    assert all(result[m] == {t: {0}} for m in ("a", "b", "c"))
    topics = {t: TopicInfo(t, "t", 4)}
    result = simple_assign(members[:2], topics)
    assert result["a"][t] | result["b"][t] == {0, 1, 2, 3} and not result["a"][t] & result["b"][t]
