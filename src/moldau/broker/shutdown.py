"""Controlled shutdown: hand leadership over before a cluster broker stops.

Theory of operation (Kafka's controlled shutdown, in KRaft's shape): on SIGTERM a
broker in a cluster does not just leave. While it still serves clients and its
followers still fetch from it, it marks its own registration in the metadata store as
``shutting_down`` (a compare-and-swap on the registration it holds,
:meth:`MetaStore.begin_controlled_shutdown`). The controller sees the change through
its watch and, by the rules of :func:`moldau.controller.election.reconcile`, moves
every leadership another live in-sync replica can take to that replica (a new leader
epoch) and takes the broker out of every ISR it does not lead; leaders do not add it
back meanwhile. The states come back to this broker through the watch: it becomes a
follower of each partition it led, and its pending acks=all produce requests answer
NOT_LEADER_OR_FOLLOWER, which producers retry on the new leader (idempotent producers
without duplicates).

:func:`controlled_shutdown` waits until this broker leads nothing that someone else
could lead and is in no other leader's ISR. Bounded as in Kafka: up to
``controlled.shutdown.max.retries`` attempts (the mark is written again each time),
each waiting up to ``controlled.shutdown.retry.backoff.ms``; after that the broker stops
anyway (its lease is revoked at stop, so the controller elects as after a crash). A
partition no other ISR member can lead (replication factor 1, or an ISR of one) stays
with this broker until it stops: there is nobody to hand it to, and waiting would not
change that. ``controlled.shutdown.enable=false`` skips all of this.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

log = logging.getLogger(__name__)

#: how often the broker looks at its partitions while it waits (states arrive by watch)
POLL_S = 0.02


def remaining(broker: Broker) -> list[str]:
    """The partitions that hold this broker back: those it leads while another live
    broker not shutting down is in their ISR, and those whose leader (another broker)
    still has it in the ISR."""
    registered = {b.broker_id: b for b in broker.store.brokers()}
    me = broker.node_id
    out = []
    for topic in list(broker.topics.values()):
        for index, state in topic.partitions.items():
            if me not in state.replicas:
                continue
            if state.leader == me:
                others = [
                    r for r in state.isr
                    if r != me and r in registered and not registered[r].shutting_down
                ]
                if others:
                    out.append(f"{topic.name}-{index}")
            elif state.leader >= 0 and me in state.isr and state.leader in registered:
                out.append(f"{topic.name}-{index}")
    return out


async def controlled_shutdown(broker: Broker) -> bool:
    """Hand leadership over and leave the ISRs (see the module docstring); True when
    done, False when the attempts ran out (the broker then stops regardless)."""
    config = broker.config
    if not config.bool("controlled.shutdown.enable") or not broker.store.brokers():
        return True  # disabled, or a single node: nobody to hand over to
    attempts = config.int("controlled.shutdown.max.retries")
    wait_s = config.int("controlled.shutdown.retry.backoff.ms") / 1000
    began = time.monotonic()
    for attempt in range(1, attempts + 1):
        deadline = time.monotonic() + wait_s
        try:
            # within the attempt's time: an unreachable etcd must not hold the
            # shutdown for the store's whole request timeout, attempt after attempt
            await asyncio.wait_for(broker.store.begin_controlled_shutdown(), max(0.1, wait_s))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("controlled shutdown attempt %d: cannot mark the registration: %r", attempt, exc)
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))  # Kafka's backoff
            continue
        while (left := remaining(broker)) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        if not left:
            log.info("controlled shutdown complete in %.0f ms: leading nothing another replica can lead",
                     (time.monotonic() - began) * 1000)
            return True
        log.warning("controlled shutdown attempt %d of %d: still waiting for %d partitions (%s)",
                    attempt, attempts, len(left), ", ".join(left[:5]))
    log.warning("controlled shutdown did not complete after %d attempts; stopping anyway", attempts)
    return False
