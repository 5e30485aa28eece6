"""Reassignment and leader-election state changes (Kafka's PartitionChangeBuilder rules)."""

from __future__ import annotations

import pytest

from moldau.controller import reassignment as r
from moldau.metastore.store import PartitionState
from moldau.protocol.errors import ErrorCode, KafkaError

LIVE = {1, 2, 3, 4}


def state(leader: int, replicas: list[int], isr: list[int] | None = None, **kw: object) -> PartitionState:
    return PartitionState(leader=leader, leader_epoch=5, replicas=replicas,
                          isr=list(replicas) if isr is None else isr, partition_epoch=9, **kw)  # type: ignore[arg-type]


def test_move_adds_then_completes_when_new_replicas_are_in_sync_and_moves_the_leader() -> None:
    start = r.reassign(state(1, [1, 2, 3]), [2, 3, 4], LIVE)
    assert start is not None
    assert (start.replicas, start.adding_replicas, start.removing_replicas) == ([2, 3, 4, 1], [4], [1])
    assert start.leader == 1 and start.leader_epoch == 5 and start.partition_epoch == 10
    assert r.complete(start, LIVE) is None  # 4 not in the ISR yet
    caught_up = PartitionState(**{**start.__dict__, "isr": [1, 2, 3, 4], "partition_epoch": 11})
    done = r.complete(caught_up, LIVE)
    assert done is not None
    assert (done.replicas, done.isr, done.adding_replicas, done.removing_replicas) == ([2, 3, 4], [2, 3, 4], [], [])
    assert done.leader == 2 and done.leader_epoch == 6 and done.partition_epoch == 12


def test_reorder_or_shrink_completes_at_once() -> None:
    reordered = r.reassign(state(1, [1, 2, 3]), [3, 2, 1], LIVE)
    assert reordered is not None and not reordered.reassigning
    assert reordered.replicas == [3, 2, 1] and reordered.leader == 1 and reordered.leader_epoch == 5
    shrunk = r.reassign(state(1, [1, 2, 3]), [2], LIVE)
    assert shrunk is not None and (shrunk.replicas, shrunk.isr, shrunk.leader) == ([2], [2], 2)
    assert shrunk.leader_epoch == 6
    assert r.reassign(state(1, [1, 2, 3]), [1, 2, 3], LIVE) is None


def test_cancel_reverts_and_needs_a_reassignment() -> None:
    moving = r.reassign(state(1, [1, 2]), [3, 4], LIVE)
    assert moving is not None and moving.replicas == [3, 4, 1, 2]
    back = r.cancel(PartitionState(**{**moving.__dict__, "isr": [1, 2, 3]}), LIVE, unclean_allowed=False)
    assert back is not None
    assert (back.replicas, back.isr, back.leader, back.reassigning) == ([1, 2], [1, 2], 1, False)
    with pytest.raises(KafkaError) as raised:
        r.cancel(state(1, [1, 2]), LIVE, unclean_allowed=False)
    assert raised.value.code == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS


def test_cancel_that_would_empty_the_isr_needs_unclean_election() -> None:
    odd = state(3, [3, 1], isr=[3], adding_replicas=[3], removing_replicas=[1])
    with pytest.raises(KafkaError) as raised:
        r.cancel(odd, LIVE, unclean_allowed=False)
    assert raised.value.code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    reverted = r.cancel(odd, LIVE, unclean_allowed=True)
    assert reverted is not None and (reverted.replicas, reverted.isr, reverted.leader) == ([1], [1], 1)


def test_preferred_election() -> None:
    with pytest.raises(KafkaError) as raised:
        r.elect_preferred(state(1, [1, 2, 3]), LIVE)
    assert raised.value.code == ErrorCode.ELECTION_NOT_NEEDED
    moved = r.elect_preferred(state(2, [1, 2, 3]), LIVE)
    assert (moved.leader, moved.leader_epoch, moved.partition_epoch) == (1, 6, 10)
    for not_available in (state(2, [1, 2, 3], isr=[2, 3]), state(2, [1, 2, 3])):
        with pytest.raises(KafkaError) as raised:
            r.elect_preferred(not_available, {2, 3} if not_available.isr == [1, 2, 3] else LIVE)
        assert raised.value.code == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE


def test_unclean_election() -> None:
    with pytest.raises(KafkaError) as raised:
        r.elect_unclean(state(1, [1, 2]), LIVE)
    assert raised.value.code == ErrorCode.ELECTION_NOT_NEEDED
    offline = state(-1, [1, 2, 3], isr=[1])
    chosen = r.elect_unclean(offline, {2, 3})
    assert (chosen.leader, chosen.isr, chosen.leader_epoch) == (2, [2], 6)
    with pytest.raises(KafkaError) as raised:
        r.elect_unclean(offline, {4})
    assert raised.value.code == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE


def test_imbalance_per_broker_percentage() -> None:
    # broker 1 prefers partitions 0-2 and leads two of them (1 of 3 elsewhere: 33 %);
    # broker 2 prefers partition 3 and leads it
    parts = [("t", 0, state(2, [1, 2])), ("t", 1, state(1, [1, 2])), ("t", 2, state(1, [1, 2])),
             ("t", 3, state(2, [2, 1]))]
    assert r.imbalanced(parts, LIVE, 10) == [("t", 0)]
    assert r.imbalanced(parts, LIVE, 50) == []  # 33 % is within 50 %
    assert r.imbalanced(parts, {2, 3}, 10) == []  # the preferred broker is not live
    parts[0] = ("t", 0, state(2, [1, 2], isr=[2]))
    assert r.imbalanced(parts, LIVE, 10) == []  # nor in the ISR
