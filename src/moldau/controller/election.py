"""Partition leader election by the elected controller (Kafka's clean election).

Theory of operation: the controller keeps every partition led by a live broker. When a
broker's registration goes (its lease expired after a crash, or it deregistered at a
controlled shutdown), and whenever this broker becomes controller, it looks at every
partition (:func:`reconcile`):

* a leader that is not live is replaced by the first replica, in assignment order,
  that is in the ISR and live; with ``unclean.leader.election.enable=false`` (the
  default, the only mode here) there is no other candidate, and a partition without
  one goes offline (leader -1) keeping its ISR, so the first of those replicas to come
  back leads it again without losing anything the ISR acknowledged;
* replicas that are not live leave the ISR (the leader always stays);
* a new leader bumps the leader epoch; every change bumps the partition epoch and is
  written with compare-and-swap on it (``MetaStore.alter_partition``), so a change
  that raced with the leader's own ISR update is decided on fresh state next time;
* a broker in controlled shutdown (live, but ``shutting_down`` in its registration) is
  no candidate while another ISR member is: it loses the leaderships that another
  live ISR member can take, and leaves every ISR it does not lead (KRaft's rules for a
  broker in controlled shutdown); a partition nobody else can lead stays with it
  until it stops.
"""

from __future__ import annotations

import dataclasses

from moldau.metastore.store import PartitionState


def reconcile(
    state: PartitionState, live: set[int], shutting_down: frozenset[int] | set[int] = frozenset()
) -> PartitionState | None:
    """The state ``state`` should have with ``live`` brokers, of which those in
    ``shutting_down`` are leaving by a controlled shutdown; None if it is right."""
    leader = state.leader
    live_isr = [r for r in state.isr if r in live]
    eligible = [r for r in state.replicas if r in live_isr and r not in shutting_down]
    if leader not in live:
        candidates = eligible or [r for r in state.replicas if r in live_isr]
        new_leader = candidates[0] if candidates else -1
    elif leader in shutting_down and eligible:
        new_leader = eligible[0]
    else:
        new_leader = leader
    if new_leader < 0:
        new_isr = list(state.isr)  # offline: keep who may lead it cleanly again
    else:
        staying = [r for r in live_isr if r not in shutting_down or r == new_leader]
        new_isr = staying if new_leader in staying else [new_leader, *staying]
    if new_leader == leader and new_isr == state.isr:
        return None
    return dataclasses.replace(  # a reassignment in progress stays as it is
        state,
        leader=new_leader,
        leader_epoch=state.leader_epoch + (1 if new_leader != leader else 0),
        replicas=list(state.replicas),
        isr=new_isr,
        partition_epoch=state.partition_epoch + 1,
    )
