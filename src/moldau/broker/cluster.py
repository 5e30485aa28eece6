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
a safety net, and writes each decision with compare-and-swap on the partition epoch
and on its controller epoch (a deposed controller cannot overwrite).

Fencing: the store's session (``MetaStore.session``) says until when this broker may
act on its membership; partitions read it on every leadership test. When it lapses the
follower wakes whatever waits on this broker's leaderships and unloads the groups it
coordinated; when the store has re-read the metadata it delivers it in order and then
a ``SessionChanged``, on which the follower resumes the session. :class:`DeathProbe`
ends the session of a broker whose port refuses connections (its process is gone)
without waiting for its lease to time out.

Topic and cluster-metadata writes received by another broker are forwarded to the
elected controller (:mod:`moldau.broker.forwarding`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from moldau.controller.election import reconcile
from moldau.controller.operations import PartitionBalancer
from moldau.metastore.store import (
    BrokerChanged,
    BrokerConfigsChanged,
    BrokerIdInUseError,
    BrokerInfo,
    ControllerChanged,
    MetaChange,
    PartitionChanged,
    PartitionState,
    SecurityChanged,
    SessionChanged,
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
        self.probe = DeathProbe(broker)
        #: partitions this broker leads by the metadata whose groups wait for the session
        #: (at start: all of them, the coordinator loaded none), by leader epoch
        self._resigned: dict[tuple[str, int], int] = {
            key: p.leader_epoch for key, p in broker.partitions.items() if p.leader == broker.node_id
        }
        self.balancer = PartitionBalancer(broker)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self.elector.start()
        if self.broker.config.bool("moldau.broker.refused.probe.enable"):
            self.broker.replica_manager.on_leader_refused = self.probe.suspect
        self.balancer.start()

    async def stop(self) -> None:
        await self.balancer.stop()
        self.broker.replica_manager.on_leader_refused = None
        await self.probe.stop()
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
            if change.state.reassigning:
                self.balancer.trigger()  # its new replicas may all be in the ISR now
        elif isinstance(change, BrokerConfigsChanged):
            broker.dynamic_configs[change.scope] = dict(change.configs)
            broker._apply_dynamic_configs(strict=False)  # as at start: never fatal
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
        elif isinstance(change, SecurityChanged):
            broker.apply_security(change.kind, change.key, change.value)
        elif isinstance(change, SessionChanged):
            self._session_changed(change)

    def _session_changed(self, change: SessionChanged) -> None:
        """Lapsed: wake everything that waits on this broker's leadership, so delayed
        produces and commits are answered (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR) now
        rather than at their timeouts, and unload the groups of the ``__consumer_offsets``
        partitions it led. Back: every change up to the re-read has been applied before
        this one, so lead again where that metadata says, groups reloaded from the log."""
        broker = self.broker
        listeners = list(broker.leadership_listeners)
        if change.valid:
            broker.store.session.resume()
            leading = [p for p in broker.partitions.values() if p.is_leader]
            resigned, self._resigned = self._resigned, {}
            for partition in leading:
                partition.session_resumed()
                key = (partition.topic, partition.index)
                if resigned.get(key) == partition.leader_epoch:
                    # groups come back as their log has them (a new leader epoch was
                    # told to the listeners when it was applied)
                    for listener in listeners:
                        listener.leadership_changed(partition.topic, partition.index, True)
            log.info("session held again (metadata as of revision %d); leading %d partition(s)",
                     change.revision, len(leading))
            self.elector.trigger()
            return
        fenced = [p for p in broker.partitions.values() if p.fenced]
        for partition in fenced:
            partition._wake()
            partition._wake_appenders()
            # as Kafka's coordinator resigns: no group state kept that the log may not have
            self._resigned[(partition.topic, partition.index)] = partition.leader_epoch
            for listener in listeners:
                listener.leadership_changed(partition.topic, partition.index, False)
        log.warning("session lapsed: %d partition(s) this broker led answer NOT_LEADER_OR_FOLLOWER "
                    "until it has re-read the metadata", len(fenced))


class DeathProbe:
    """Ends the session of a broker whose process is gone, without waiting for its
    lease to time out (the largest part of a failover).

    A follower's fetcher that finds its leader's endpoint refusing connections reports
    it here (:meth:`suspect`). A live broker always listens: it registers only after its
    listener is up and closes it only on its way out. So when two more connection
    attempts, 50 ms apart and after its registration was read, are refused too, the
    process behind that registration is gone and its lease is revoked in etcd (unless
    the registration changed meanwhile); the controller then elects new leaders as for
    an expired session. A frozen or unreachable broker does not refuse (connections
    hang), and is left to its session timeout and its own fencing."""

    ATTEMPTS = 2
    INTERVAL_S = 0.05

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._probing: dict[int, asyncio.Task[None]] = {}

    def suspect(self, broker_id: int) -> None:
        if broker_id in self._probing or broker_id == self.broker.node_id:
            return
        info = next((b for b in self.broker.store.brokers() if b.broker_id == broker_id), None)
        if info is None:
            return  # already gone
        task = asyncio.ensure_future(self._probe(info))
        self._probing[broker_id] = task
        task.add_done_callback(lambda _: self._probing.pop(broker_id, None))

    async def _probe(self, info: BrokerInfo) -> None:
        store = self.broker.store

        async def still_refused() -> bool:
            for _ in range(self.ATTEMPTS):
                await asyncio.sleep(self.INTERVAL_S)
                if not await _refuses(info.host, info.port):
                    return False
            return store.session.valid()  # we may be the one cut off: then act on nothing

        try:
            ended = await store.end_session_of(info, still_refused)
        except Exception as exc:
            log.warning("could not end the session of broker %d: %s", info.broker_id, exc)
            return
        if ended:
            log.warning("broker %d refuses connections at %s:%d: its process is gone; ended its session",
                        info.broker_id, info.host, info.port)

    async def stop(self) -> None:
        for task in list(self._probing.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _refuses(host: str, port: int) -> bool:
    """True when a TCP connection to ``host:port`` is refused (nothing listens there)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except ConnectionRefusedError:
        return True
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return False


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

    def _controller_epoch(self) -> int:
        """Our controller epoch while we are the controller and our session holds, else 0."""
        store = self.broker.store
        controller = store.controller()
        if controller is None or controller.broker_id != self.broker.node_id or not store.session.valid():
            return 0
        return controller.epoch

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            if not self._controller_epoch() or not self.broker.store.brokers():
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
        epoch = self._controller_epoch()
        if not epoch:
            return 0
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
                await broker.store.alter_partition(name, index, new, old.partition_epoch, controller_epoch=epoch)
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
    info = broker.registration()
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
