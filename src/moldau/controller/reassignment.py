"""Partition changes an operator asks for: reassignments and leader elections.

Pure functions from one partition state to the next (Kafka's PartitionChangeBuilder,
PartitionReassignmentReplicas and PartitionReassignmentRevert); the writing, with
compare-and-swap on the partition epoch, is :mod:`moldau.controller.operations`.

Theory of operation of a reassignment (KIP-455, as Kafka's KRaft controller does it):

1. **Start** (:func:`reassign`): the replica list becomes the target followed by the
   replicas being removed; ``adding_replicas`` and ``removing_replicas`` record the
   difference. The new replicas create their logs and start fetching from the leader
   like any follower; the leader adds each to the ISR once it has caught up.
2. **Complete** (:func:`complete`, the controller runs it whenever the partition
   changes): once the ISR holds every target replica, the removed replicas leave the
   replica list and the ISR, the markers are cleared, and if the leader was removed
   the first target replica in the ISR leads (new leader epoch). Removed replicas stop
   and delete their logs when they apply that state. A reassignment that only reorders
   or shrinks the replicas completes at once.
3. **Cancel** (:func:`cancel`, null replicas): the replicas being added leave the list
   and the ISR; the original replicas stay. If that would empty the ISR the cancel is
   refused unless the topic allows unclean leader election.

Leader elections (ElectLeaders, KIP-460, and the controller's auto-rebalance):

* **preferred** (:func:`elect_preferred`): the first replica leads if it is live and
  in the ISR; ELECTION_NOT_NEEDED if it already leads; PREFERRED_LEADER_NOT_AVAILABLE
  otherwise.
* **unclean** (:func:`elect_unclean`): only for a partition without a leader:
  the first live ISR member, else the first live replica with the ISR cut to it (data
  the ISR acknowledged may be lost, which is what the operator asked for);
  ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica is live.

Every change bumps the partition epoch; a new leader, or a replica list that loses a
member, bumps the leader epoch too (Kafka does, so that fetchers of the old list are
fenced).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from moldau.metastore.store import PartitionState
from moldau.protocol.errors import ErrorCode, KafkaError

NO_LEADER = -1


def _elect(leader: int, replicas: list[int], isr: list[int], live: set[int]) -> int:
    """Kafka's online election: keep a leader that is live and in the ISR, else the
    first replica that is."""
    if leader in isr and leader in live:
        return leader
    return next((r for r in replicas if r in isr and r in live), NO_LEADER)


def _build(
    state: PartitionState,
    replicas: list[int],
    isr: list[int],
    adding: list[int],
    removing: list[int],
    live: set[int],
    leader: int | None = None,
) -> PartitionState | None:
    """The next state: completes the reassignment if it can, elects a leader if the
    current one is no longer eligible; None if nothing changes."""
    if adding or removing:
        target_isr = [r for r in isr if r not in removing]
        target = [r for r in replicas if r not in removing]
        if target_isr and target and set(target) <= set(target_isr):
            replicas, isr, adding, removing = target, target_isr, [], []
    if leader is None:
        leader = _elect(state.leader, replicas, isr, live)
    new_leader_epoch = state.leader_epoch
    if leader != state.leader or not set(state.replicas) <= set(replicas):
        new_leader_epoch += 1
    new = PartitionState(
        leader=leader,
        leader_epoch=new_leader_epoch,
        replicas=list(replicas),
        isr=list(isr),
        partition_epoch=state.partition_epoch + 1,
        adding_replicas=list(adding),
        removing_replicas=list(removing),
    )
    unchanged = dataclasses.replace(new, leader_epoch=state.leader_epoch, partition_epoch=state.partition_epoch)
    return None if unchanged == state else new


def reassign(state: PartitionState, target: list[int], live: set[int]) -> PartitionState | None:
    """Start (or replace) a reassignment to ``target`` (already validated); None if the
    partition already has exactly these replicas and nothing is in progress."""
    current = state.replicas
    removing = sorted(r for r in current if r not in target)
    adding = sorted(r for r in target if r not in current)
    return _build(state, list(target) + removing, list(state.isr), adding, removing, live)


def complete(state: PartitionState, live: set[int]) -> PartitionState | None:
    """The state that finishes a reassignment whose target replicas are all in the ISR,
    or None (nothing in progress, or not caught up yet)."""
    if not state.reassigning:
        return None
    new = _build(state, list(state.replicas), list(state.isr), state.adding_replicas,
                 state.removing_replicas, live)
    return new if new is not None and not new.reassigning else None


def cancel(state: PartitionState, live: set[int], unclean_allowed: bool) -> PartitionState | None:
    """Revert a reassignment in progress (Kafka's PartitionReassignmentRevert)."""
    if not state.reassigning:
        raise KafkaError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, "No partition reassignment is in progress.")
    replicas = [r for r in state.replicas if r not in state.adding_replicas]
    isr = [r for r in state.isr if r not in state.adding_replicas]
    leader = None
    if not isr:
        if not unclean_allowed:
            raise KafkaError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                "Unable to revert partition assignment because it would require an unclean leader election.",
            )
        isr = [replicas[0]]
        leader = replicas[0] if replicas[0] in live else NO_LEADER
    return _build(state, replicas, isr, [], [], live, leader)


def elect_preferred(state: PartitionState, live: set[int]) -> PartitionState:
    """Make the first replica the leader (PREFERRED election)."""
    if not state.replicas:
        raise KafkaError(ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, "The preferred leader was not available.")
    preferred = state.replicas[0]
    if state.leader == preferred:
        raise KafkaError(ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition.")
    if preferred not in live or preferred not in state.isr:
        raise KafkaError(
            ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
            f"Preferred replica {preferred} is {'not in the ISR' if preferred in live else 'not live'}.",
        )
    new = _build(state, list(state.replicas), list(state.isr), state.adding_replicas,
                 state.removing_replicas, live, leader=preferred)
    assert new is not None
    return new


def elect_unclean(state: PartitionState, live: set[int]) -> PartitionState:
    """Give a leaderless partition a leader, from outside the ISR if need be (UNCLEAN)."""
    if state.leader >= 0:  # Kafka's hasLeader; a dead leader is replaced by the controller
        raise KafkaError(ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition.")
    clean = next((r for r in state.replicas if r in state.isr and r in live), None)
    if clean is not None:
        isr = [r for r in state.isr if r in live]
        leader = clean
    else:
        leader = next((r for r in state.replicas if r in live), NO_LEADER)
        if leader < 0:
            raise KafkaError(
                ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, "Eligible topic partition leaders are not available."
            )
        isr = [leader]
    new = _build(state, list(state.replicas), isr, state.adding_replicas, state.removing_replicas, live,
                 leader=leader)
    assert new is not None
    return new


def imbalanced(
    partitions: Iterable[tuple[str, int, PartitionState]], live: set[int], percentage: int
) -> list[tuple[str, int]]:
    """Partitions to give back to their preferred leader (Kafka's leader imbalance
    check): per broker, the share of the partitions it prefers to lead that another
    broker leads; where that share exceeds ``percentage`` %, each such partition whose
    preferred replica is live and in the ISR (and not being reassigned)."""
    preferred_total: dict[int, int] = {}
    not_led: dict[int, list[tuple[str, int, PartitionState]]] = {}
    for topic, index, state in partitions:
        if not state.replicas:
            continue
        preferred = state.replicas[0]
        preferred_total[preferred] = preferred_total.get(preferred, 0) + 1
        if state.leader != preferred:
            not_led.setdefault(preferred, []).append((topic, index, state))
    out: list[tuple[str, int]] = []
    for broker_id, waiting in sorted(not_led.items()):
        if broker_id not in live or len(waiting) * 100 <= percentage * preferred_total[broker_id]:
            continue
        out += [(t, i) for t, i, s in waiting if broker_id in s.isr and not s.reassigning]
    return out


def reassigning(partitions: Mapping[int, PartitionState]) -> dict[int, PartitionState]:
    """The partitions of a topic with a reassignment in progress."""
    return {i: s for i, s in partitions.items() if s.reassigning}
