"""The fetch session cache (KIP-227) without a broker: updates, forgetting, the answer
filter and eviction, as Kafka's FetchSessionCache."""

from __future__ import annotations

from types import SimpleNamespace as NS

from moldau.replication.fetch_session import (
    FINAL_EPOCH,
    INVALID_SESSION_ID,
    CachedPartition,
    FetchSessionCache,
    next_epoch,
)


def part(index: int, offset: int = 0) -> NS:
    return NS(partition=index, fetch_offset=offset, partition_max_bytes=1024, current_leader_epoch=-1,
              log_start_offset=-1, last_fetched_epoch=-1)


def cached(topic: str, *indexes: int) -> dict:
    return {(topic, i): CachedPartition(topic, None, part(i)) for i in indexes}


def test_epochs_wrap_to_one_and_final_stays_final() -> None:
    assert next_epoch(0) == 1 and next_epoch(0x7FFFFFFF) == 1 and next_epoch(FINAL_EPOCH) == FINAL_EPOCH


def test_update_adds_changes_and_forgets_in_session_order() -> None:
    cache = FetchSessionCache(10)
    sid = cache.maybe_create(0, False, False, cached("a", 0, 1))
    session = cache.get(sid)
    assert session is not None and session.epoch == 1
    session.update([NS(topic="a", partitions=[part(1, 7)]), NS(topic="b", partitions=[part(0)])],
                   [NS(topic="a", partitions=[0])])
    assert list(session.partitions) == [("a", 1), ("b", 0)]
    assert session.partitions[("a", 1)].fetch_offset == 7
    assert [(t.topic, [p.partition for p in t.partitions]) for t in session.topics()] == [("a", [1]), ("b", [0])]
    session.moved_to_end(iter([session.partitions[("a", 1)]]))
    assert list(session.partitions) == [("b", 0), ("a", 1)]


def test_an_answer_carries_only_news() -> None:
    entry = CachedPartition("a", None, part(0))
    told = NS(high_watermark=5, log_start_offset=0, error_code=0)
    assert entry.must_respond(told, False)  # first time: the high watermark is news
    assert not entry.must_respond(told, False)
    assert entry.must_respond(told, True)  # records always are
    assert entry.must_respond(NS(high_watermark=5, log_start_offset=0, error_code=6), False)
    assert entry.must_respond(told, False)  # the error cleared: sent again


def test_a_full_cache_evicts_only_idle_or_old_smaller_sessions() -> None:
    cache = FetchSessionCache(2, eviction_ms=100)
    first = cache.maybe_create(0, False, False, cached("a", 0, 1, 2))
    second = cache.maybe_create(0, False, False, cached("b", 0))
    assert INVALID_SESSION_ID not in (first, second)
    # both young and in use: nothing to evict
    cache.touch(cache.get(first), 50)
    cache.touch(cache.get(second), 50)
    assert cache.maybe_create(60, False, False, cached("c", 0, 1)) == INVALID_SESSION_ID
    # old enough: the smallest goes, for a session at least as large
    cache.touch(cache.get(first), 140)
    cache.touch(cache.get(second), 140)
    assert cache.maybe_create(150, False, False, cached("c", 0, 1)) != INVALID_SESSION_ID
    assert cache.get(second) is None and cache.get(first) is not None
    # idle past the eviction time: the least recently used goes, whatever its size
    assert cache.maybe_create(400, False, False, cached("d", 0)) != INVALID_SESSION_ID
    assert cache.get(first) is None and cache.evictions == 2


def test_no_slots_no_sessions() -> None:
    assert FetchSessionCache(0).maybe_create(0, True, True, cached("a", 0)) == INVALID_SESSION_ID


def test_sessions_hold_a_bounded_number_of_partitions() -> None:
    cache = FetchSessionCache(10, max_partitions=3)
    assert cache.maybe_create(0, False, False, cached("a", 0, 1)) != INVALID_SESSION_ID
    assert cache.maybe_create(0, False, False, cached("b", 0, 1)) == INVALID_SESSION_ID  # 4 > 3
    assert cache.maybe_create(0, False, False, cached("b", 0)) != INVALID_SESSION_ID
    assert not cache.over_budget() and cache.over_budget(1)
