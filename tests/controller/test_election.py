"""The controller's leader election for brokers in controlled shutdown (``reconcile``)."""

from __future__ import annotations

from moldau.controller.election import reconcile
from moldau.metastore.store import BrokerInfo, PartitionState


def test_a_leader_in_controlled_shutdown_hands_over_to_the_next_isr_member() -> None:
    state = PartitionState(1, 4, [1, 2, 3], [1, 2, 3], 9)
    moved = reconcile(state, {1, 2, 3}, frozenset({1}))
    # a new leader epoch, and the leaving broker is out of the ISR in the same write
    assert moved == PartitionState(2, 5, [1, 2, 3], [2, 3], 10)
    assert reconcile(moved, {1, 2, 3}, frozenset({1})) is None


def test_a_follower_in_controlled_shutdown_leaves_the_isr_only() -> None:
    state = PartitionState(2, 4, [1, 2, 3], [1, 2, 3], 9)
    assert reconcile(state, {1, 2, 3}, {3}) == PartitionState(2, 4, [1, 2, 3], [1, 2], 10)


def test_nobody_to_hand_over_to_keeps_the_leader() -> None:
    alone = PartitionState(1, 4, [1, 2, 3], [1], 9)
    assert reconcile(alone, {1, 2, 3}, {1}) is None
    rf1 = PartitionState(1, 0, [1], [1], 0)
    assert reconcile(rf1, {1, 2}, {1}) is None


def test_every_isr_member_leaving_prefers_a_live_one_to_offline() -> None:
    # the leader died; the only other ISR member is shutting down: it leads meanwhile
    state = PartitionState(1, 4, [1, 2, 3], [1, 2], 9)
    assert reconcile(state, {2, 3}, {2}) == PartitionState(2, 5, [1, 2, 3], [2], 10)


def test_the_registration_flag_round_trips_and_is_absent_by_default() -> None:
    info = BrokerInfo(3, "h", 9092, "r1")
    assert "shutting_down" not in info.to_json()
    leaving = BrokerInfo(3, "h", 9092, "r1", shutting_down=True)
    assert BrokerInfo.from_json(leaving.to_json()) == leaving
    assert BrokerInfo.from_json(info.to_json()) == info
