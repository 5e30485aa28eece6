"""Operator requests on partitions, written to the metadata store: reassignments and
leader elections, and the controller's background balancer.

The decisions are the pure functions of :mod:`moldau.controller.reassignment`; here
they are written, like every partition state, with compare-and-swap on the partition
epoch (``MetaStore.alter_partition``) and then applied to this broker as the watch
would. A lost race is decided again on the state the store holds now (a few times,
then the request answers with the error). Any broker may write them, as any broker
writes topic records today; every broker's watch applies them in the store's order.

While this broker is the elected controller, :class:`PartitionBalancer`:

* completes reassignments once their new replicas are in the ISR (woken when a
  partition under reassignment changes, and every second);
* with ``auto.leader.rebalance.enable`` (Kafka's default, true), every
  ``leader.imbalance.check.interval.seconds`` (300) moves leadership back to preferred
  replicas on brokers whose share of partitions led by another broker exceeds
  ``leader.imbalance.per.broker.percentage`` (10) -- Kafka's ZooKeeper-era rule, which
  these two settings describe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from moldau.config.broker import BrokerConfig
from moldau.controller import reassignment
from moldau.controller.placement import validate_assignment
from moldau.metastore.store import (
    BrokerInfo,
    MetaStore,
    PartitionState,
    StaleEpochError,
    TopicRecord,
)
from moldau.protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

#: compare-and-swap attempts before a request gives up on a busy partition
CAS_ATTEMPTS = 5
PREFERRED, UNCLEAN = 0, 1

Decide = Callable[[PartitionState], "PartitionState | None"]


class OperationsHost(Protocol):
    """What these operations use of the broker (the broker passes itself in; this
    module never imports it): its view of topics and live brokers, the store to write,
    the change runner, and the broker to apply what was written."""

    @property
    def node_id(self) -> int: ...
    @property
    def config(self) -> BrokerConfig: ...
    @property
    def store(self) -> MetaStore: ...
    @property
    def changes(self) -> Any: ...  # moldau.broker.changes.StateChanges
    @property
    def topics(self) -> Mapping[str, TopicRecord]: ...

    def live_brokers(self) -> list[BrokerInfo]: ...
    def apply_partition_state(self, topic: str, index: int, state: PartitionState) -> None: ...

#: running balancers, nudged by this broker's own reassignment writes
_BALANCERS: weakref.WeakSet[PartitionBalancer] = weakref.WeakSet()


def live_ids(broker: OperationsHost) -> set[int]:
    """The brokers that may lead: live, and not in a controlled shutdown (a
    registration flag some versions carry)."""
    return {b.broker_id for b in broker.live_brokers() if not getattr(b, "shutting_down", False)}


def current_state(broker: OperationsHost, topic: str, index: int) -> PartitionState:
    record = broker.topics.get(topic)
    if record is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find a topic named {topic}.")
    state = record.partitions.get(index)
    if state is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {topic}:{index}.")
    return state


async def change_partition(broker: OperationsHost, topic: str, index: int, decide: Decide) -> PartitionState | None:
    """Write ``decide(state)`` with compare-and-swap, deciding again on a lost race;
    apply the result here. Runs to completion even if the requester hangs up."""

    async def step() -> PartitionState | None:
        state = current_state(broker, topic, index)
        topic_id = broker.topics[topic].topic_id
        for _ in range(CAS_ATTEMPTS):
            new = decide(state)
            if new is None:
                return None
            try:
                await broker.store.alter_partition(topic, index, new, state.partition_epoch)
            except StaleEpochError:
                fresh = await broker.store.get_topic(topic)
                if fresh is None or fresh.topic_id != topic_id or index not in fresh.partitions:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) from None
                state = fresh.partitions[index]
                continue
            except KeyError:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) from None
            record = broker.topics.get(topic)
            applied = None if record is None else record.partitions.get(index)
            if applied is not None and record.topic_id == topic_id and applied.partition_epoch < new.partition_epoch:
                broker.apply_partition_state(topic, index, new)
            if new.reassigning:
                for balancer in _BALANCERS:
                    if balancer.broker is broker:
                        balancer.trigger()  # a write of our own is not watched
            return new
        raise KafkaError(ErrorCode.REQUEST_TIMED_OUT, f"{topic}-{index} kept changing; try again.")

    return await broker.changes.run(step, exclusive=False)


def _unclean_allowed(broker: OperationsHost, topic: str) -> bool:
    record = broker.topics.get(topic)
    configs = {} if record is None else record.configs
    value = broker.config.effective_topic_config(configs)["unclean.leader.election.enable"]
    return value is True or str(value).lower() == "true"


async def alter_reassignment(
    broker: OperationsHost, topic: str, index: int, replicas: list[int] | None, allow_rf_change: bool = True
) -> None:
    """AlterPartitionReassignments for one partition: start, replace or (``None``)
    cancel its reassignment. Without ``allow_rf_change`` (KIP-860) a target with
    another replica count than the partition's (before any reassignment in progress)
    is INVALID_REPLICATION_FACTOR."""
    state = current_state(broker, topic, index)
    if replicas is not None and not allow_rf_change:
        count = len(state.replicas) - len(state.adding_replicas)
        if len(replicas) != count:
            raise KafkaError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"The replication factor is changed from {count} to {len(replicas)}",
            )
    if replicas is None:
        unclean = _unclean_allowed(broker, topic)
        await change_partition(broker, topic, index, lambda s: reassignment.cancel(s, live_ids(broker), unclean))
        return
    validate_assignment(list(replicas), {b.broker_id for b in broker.live_brokers()})
    target = list(replicas)
    new = await change_partition(broker, topic, index, lambda s: reassignment.reassign(s, target, live_ids(broker)))
    if new is not None:
        log.info("%s-%d: reassigning to %s (replicas %s, adding %s, removing %s)", topic, index, target,
                 new.replicas, new.adding_replicas, new.removing_replicas)


async def elect_leader(broker: OperationsHost, topic: str, index: int, election_type: int) -> None:
    """ElectLeaders for one partition (PREFERRED 0, UNCLEAN 1)."""
    if election_type == PREFERRED:
        decide: Decide = lambda s: reassignment.elect_preferred(s, live_ids(broker))  # noqa: E731
    elif election_type == UNCLEAN:
        decide = lambda s: reassignment.elect_unclean(s, live_ids(broker))  # noqa: E731
    else:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown election type {election_type}")
    new = await change_partition(broker, topic, index, decide)
    if new is not None:
        log.info("%s-%d: %s election made %d leader (epoch %d)", topic, index,
                 "preferred" if election_type == PREFERRED else "unclean", new.leader, new.leader_epoch)


class PartitionBalancer:
    """Completes reassignments and rebalances preferred leaders while this broker is
    the controller (cluster mode; a single broker has nothing to balance)."""

    def __init__(self, broker: OperationsHost, interval_s: float = 1.0) -> None:
        self.broker = broker
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_imbalance_check = 0.0

    def start(self) -> None:
        self._next_imbalance_check = time.monotonic() + self._imbalance_interval()
        self._task = asyncio.ensure_future(self._run())
        _BALANCERS.add(self)

    def trigger(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        _BALANCERS.discard(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _imbalance_interval(self) -> float:
        return float(self.broker.config.int("leader.imbalance.check.interval.seconds"))

    def _is_controller(self) -> bool:
        controller = self.broker.store.controller()
        return controller is not None and controller.broker_id == self.broker.node_id

    async def _run(self) -> None:
        in_progress = 0
        while True:
            # A leader's own ISR write is not watched here when this broker leads the
            # partition: poll more often while reassignments are in progress.
            wait = self.interval_s / 5 if in_progress else self.interval_s
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            if not self._is_controller() or not self.broker.store.brokers():
                continue
            try:
                in_progress = await self.complete_reassignments()
                if time.monotonic() >= self._next_imbalance_check:
                    self._next_imbalance_check = time.monotonic() + self._imbalance_interval()
                    if self.broker.config.bool("auto.leader.rebalance.enable"):
                        await self.rebalance_leaders()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("partition balancing failed; retrying")

    async def complete_reassignments(self) -> int:
        """Finish every reassignment whose target replicas are all in the ISR; returns
        how many are still in progress."""
        broker = self.broker
        live = live_ids(broker)
        waiting = 0
        for topic in list(broker.topics.values()):
            for index, state in reassignment.reassigning(topic.partitions).items():
                if reassignment.complete(state, live) is None:
                    waiting += 1
                    continue
                try:
                    new = await change_partition(
                        broker, topic.name, index, lambda s: reassignment.complete(s, live_ids(broker))
                    )
                except KafkaError as exc:
                    log.info("%s-%d: completing the reassignment failed: %s", topic.name, index, exc)
                    continue
                if new is not None:
                    log.info("%s-%d: reassignment complete: replicas %s, ISR %s, leader %d",
                             topic.name, index, new.replicas, new.isr, new.leader)
        return waiting

    async def rebalance_leaders(self) -> int:
        """Preferred-leader elections for the imbalanced brokers' partitions."""
        broker = self.broker
        live = live_ids(broker)
        states = [(t.name, i, s) for t in list(broker.topics.values()) for i, s in t.partitions.items()]
        moved = 0
        for name, index in reassignment.imbalanced(
            states, live, broker.config.int("leader.imbalance.per.broker.percentage")
        ):
            try:
                await elect_leader(broker, name, index, PREFERRED)
                moved += 1
            except KafkaError as exc:
                log.debug("%s-%d: no preferred election: %s", name, index, exc)
        if moved:
            log.info("auto leader rebalance: %d partition(s) moved back to their preferred leader", moved)
        return moved
