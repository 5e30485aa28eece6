"""Cluster membership of one broker: register, campaign, and apply what others change.

Theory of operation: with ``--cluster`` the broker's metadata store is etcd. After the
broker has loaded the image and its server listens, :func:`join_cluster` registers it
under a session lease (``broker.session.timeout.ms``) with the endpoint clients are
told, campaigns for the controller role, and starts :class:`MetadataFollower`, which
applies every change the store's watch delivers, in order, through the same
``apply_topic``/``remove_topic`` path the local controller uses. Writes this broker
makes itself are applied by the controller right away and are not echoed by the watch.

While this broker is the elected controller, :class:`LeaderElector` keeps every
partition led by a live broker (see :mod:`moldau.controller.election`): it runs when a
broker leaves or joins, when this broker wins the controller role, and every second as
a safety net, and writes each decision with compare-and-swap on the partition epoch.

Not here yet: forwarding topic changes to the elected controller (today any broker
writes topic records with compare-and-swap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from moldau.controller.election import reconcile
from moldau.metastore.store import (
    BrokerChanged,
    BrokerConfigsChanged,
    BrokerIdInUseError,
    BrokerInfo,
    ControllerChanged,
    MetaChange,
    PartitionChanged,
    PartitionState,
    StaleEpochError,
    TopicChanged,
    TopicDeleted,
)

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

log = logging.getLogger(__name__)


class MetadataFollower:
    """Applies watched metadata changes to a broker, one at a time, in store order."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._watch = broker.store.watch()
        self._task: asyncio.Task[None] | None = None
        self.elector = LeaderElector(broker)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self.elector.start()

    async def stop(self) -> None:
        await self.elector.stop()
        self._watch.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        async for change in self._watch:
            try:
                self.apply(change)
            except Exception:
                log.exception("could not apply metadata change %r", change)

    def apply(self, change: MetaChange) -> None:
        broker = self.broker
        if isinstance(change, TopicChanged):
            current = broker.topics.get(change.topic.name)
            if current is not None and current.topic_id != change.topic.topic_id:
                broker.remove_topic(current.name)  # deleted and re-created elsewhere
            broker.apply_topic(change.topic)
        elif isinstance(change, TopicDeleted):
            current = broker.topics.get(change.name)
            if current is not None and current.topic_id == change.topic_id:
                broker.remove_topic(change.name)
        elif isinstance(change, PartitionChanged):
            topic = broker.topics.get(change.topic)
            if topic is not None:
                topic.partitions[change.index] = change.state
                broker.apply_topic(topic)
        elif isinstance(change, BrokerConfigsChanged):
            broker.dynamic_configs[change.scope] = dict(change.configs)
            broker._apply_dynamic_configs()
            for topic in list(broker.topics.values()):
                broker.apply_topic(topic)
        elif isinstance(change, BrokerChanged):
            state = "left" if change.info is None else "is shutting down" if change.info.shutting_down else "joined"
            log.info("broker %d %s", change.broker_id, state)
            self.elector.trigger()
        elif isinstance(change, ControllerChanged):
            who = "none" if change.controller is None else str(change.controller.broker_id)
            log.info("controller is now %s", who)
            self.elector.trigger()


class LeaderElector:
    """Partition leader election, run while this broker is the controller."""

    def __init__(self, broker: Broker, interval_s: float = 1.0) -> None:
        self.broker = broker
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def trigger(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _is_controller(self) -> bool:
        controller = self.broker.store.controller()
        return controller is not None and controller.broker_id == self.broker.node_id

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            if not self._is_controller() or not self.broker.store.brokers():
                continue
            try:
                await self.elect_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("partition leader election failed; retrying")

    async def elect_once(self) -> int:
        """One pass over every partition; returns how many states were written."""
        broker = self.broker
        registered = broker.store.brokers()
        live = {b.broker_id for b in registered}
        leaving = frozenset(b.broker_id for b in registered if b.shutting_down)
        decisions = []
        for topic in list(broker.topics.values()):
            for index, state in topic.partitions.items():
                new = reconcile(state, live, leaving)
                if new is not None:
                    decisions.append((topic.name, index, state, new))
        if not decisions:
            return 0

        async def write(name: str, index: int, old: PartitionState, new: PartitionState) -> bool:
            try:
                await broker.store.alter_partition(name, index, new, old.partition_epoch)
            except (StaleEpochError, KeyError):
                return False  # changed meanwhile: decided again on the fresh state
            if old.leader != new.leader:
                log.info("%s-%d: leader %d -> %d (epoch %d), ISR %s", name, index, old.leader,
                         new.leader, new.leader_epoch, new.isr)
            current = broker.topics.get(name)
            if current is not None and current.partitions.get(index) is old:
                broker.apply_partition_state(name, index, new)
            return True

        async def write_all() -> list[bool]:
            return await asyncio.gather(*(write(*d) for d in decisions))

        done = await broker.changes.run(write_all, exclusive=False)
        return sum(done)


async def join_cluster(broker: Broker) -> MetadataFollower:
    """Register this broker, follow the metadata and campaign for the controller role.

    A broker restarted right after a crash finds its previous registration still alive
    until that session times out; when the registration holds this very endpoint it is
    taken to be our own former self and we wait for it to lapse (bounded by the session
    timeout). Any other holder of the id is a different broker: BrokerIdInUseError.
    """
    config = broker.config
    session_ms = config.int("broker.session.timeout.ms")
    rack = config["broker.rack"]
    info = BrokerInfo(broker.node_id, broker.advertise.host, broker.advertise.port, rack or None)  # type: ignore[arg-type]
    follower = MetadataFollower(broker)
    follower.start()
    deadline = time.monotonic() + session_ms / 1000 + 1.0
    while True:
        try:
            await broker.store.register_broker(info, session_ms, config.int("broker.heartbeat.interval.ms"))
            break
        except BrokerIdInUseError as exc:
            same_endpoint = (exc.holder.host, exc.holder.port) == (info.host, info.port)
            if not same_endpoint or time.monotonic() > deadline:
                await follower.stop()
                raise
            await asyncio.sleep(0.25)
    await broker.store.campaign()
    return follower
