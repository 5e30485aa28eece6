"""Cluster membership of one broker: register, campaign, and apply what others change.

Theory of operation: with ``--cluster`` the broker's metadata store is etcd. After the
broker has loaded the image and its server listens, :func:`join_cluster` registers it
under a session lease (``broker.session.timeout.ms``) with the endpoint clients are
told, campaigns for the controller role, and starts :class:`MetadataFollower`, which
applies every change the store's watch delivers, in order, through the same
``apply_topic``/``remove_topic`` path the local controller uses. Writes this broker
makes itself are applied by the controller right away and are not echoed by the watch.

What is not here yet (next increment): partition data replication, leader election for
partitions, and forwarding topic changes to the elected controller; today any broker
writes topic records with compare-and-swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from moldau.metastore.store import (
    BrokerChanged,
    BrokerConfigsChanged,
    BrokerIdInUseError,
    BrokerInfo,
    ControllerChanged,
    MetaChange,
    PartitionChanged,
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

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
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
            log.info("broker %d %s", change.broker_id, "joined" if change.info else "left")
        elif isinstance(change, ControllerChanged):
            who = "none" if change.controller is None else str(change.controller.broker_id)
            log.info("controller is now %s", who)


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
