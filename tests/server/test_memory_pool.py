"""MemoryPool: Kafka's non-strict pool, with wake-ups for muted connections."""

from __future__ import annotations

from moldau.server.memory_pool import MemoryPool


def test_non_strict_reservations_and_wakeups() -> None:
    pool = MemoryPool(100)
    assert pool.try_reserve(60)
    assert pool.try_reserve(60)  # overshoots: allowed while anything was available
    assert pool.out_of_memory and not pool.try_reserve(1)
    woken: list[str] = []
    pool.wait(1, lambda: woken.append("a"))
    pool.wait(2, lambda: woken.append("b"))
    pool.wait(2, lambda: woken.append("b2"))  # one wake-up per key: the latest
    pool.release(10)
    assert woken == []  # still out of memory (available -10)
    pool.release(30)
    assert woken == ["a", "b2"] and pool.waiting == 0
    assert pool.reserved == 80 and pool.peak_reserved == 120


def test_unbounded_pool_never_runs_out() -> None:
    pool = MemoryPool(-1)
    assert pool.try_reserve(10**12) and not pool.out_of_memory
    pool.release(10**12)
    assert pool.reserved == 0


def test_one_frame_at_a_time_may_grow_past_the_budget() -> None:
    pool = MemoryPool(10)
    assert pool.try_reserve(10) and not pool.try_reserve(5)
    assert pool.reserve_in_lane(1, 5) and pool.reserve_in_lane(1, 5)
    assert not pool.reserve_in_lane(2, 5)  # the lane is taken
    pool.leave_lane(1)
    assert pool.reserve_in_lane(2, 5) and pool.reserved == 25
