"""Cluster metadata and the store interface every backend implements.

The broker never knows where metadata lives: a single node keeps it in a local file
(:class:`~moldau.metastore.local.LocalMetaStore`), tests in memory, and a cluster in
etcd (:class:`~moldau.metastore.etcd.EtcdMetaStore`). Writes are compare-and-swap on the
topic record, so two controllers can never both create the same topic; the image handed
back is the source of truth the broker's caches are rebuilt from.

A cluster needs four more things of its store, and a single node has trivial answers
for each (implemented here once, overridden by the etcd backend):

* membership: :meth:`MetaStore.register_broker` under a session lease that lapses when
  the broker stops renewing it (``broker.session.timeout.ms``); :meth:`MetaStore.brokers`
  lists the live ones;
* leadership: :meth:`MetaStore.campaign` competes for the controller role and
  :meth:`MetaStore.controller` says who holds it, with an epoch that only grows;
* changes made elsewhere: :meth:`MetaStore.watch` delivers them in the store's order;
* per-partition compare-and-swap: :meth:`MetaStore.alter_partition` (AlterPartition).

And one thing a broker asks on its hot path: :attr:`MetaStore.session`, until when it
may act on its membership (lead partitions, coordinate groups, act as controller). A
single node holds it forever; a cluster broker only while its lease certainly lives
(see :class:`Session`).
"""

from __future__ import annotations

import abc
import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartitionState:
    """Leadership of one partition: who leads, in which epoch, and who is in sync.

    During a reassignment (Kafka's PartitionRegistration) ``replicas`` is the target
    followed by the replicas being removed; ``adding_replicas`` are the target's
    replicas that were not replicas before, ``removing_replicas`` those that leave
    once every target replica is in the ISR (:mod:`moldau.controller.reassignment`).
    """

    leader: int
    leader_epoch: int = 0
    replicas: list[int] = field(default_factory=list)
    isr: list[int] = field(default_factory=list)
    partition_epoch: int = 0
    adding_replicas: list[int] = field(default_factory=list)
    removing_replicas: list[int] = field(default_factory=list)

    @property
    def reassigning(self) -> bool:
        return bool(self.adding_replicas or self.removing_replicas)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "leader": self.leader,
            "leader_epoch": self.leader_epoch,
            "replicas": self.replicas,
            "isr": self.isr,
            "partition_epoch": self.partition_epoch,
        }
        if self.reassigning:  # written only while a reassignment is in progress
            data["adding_replicas"] = self.adding_replicas
            data["removing_replicas"] = self.removing_replicas
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartitionState:
        return cls(**data)


@dataclass
class TopicRecord:
    """A topic: its id, partitions and config overrides (text, as users set them)."""

    name: str
    topic_id: uuid.UUID
    partitions: dict[int, PartitionState]
    configs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic_id": str(self.topic_id),
            "partitions": {str(i): p.to_json() for i, p in self.partitions.items()},
            "configs": self.configs,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TopicRecord:
        return cls(
            name=data["name"],
            topic_id=uuid.UUID(data["topic_id"]),
            partitions={int(i): PartitionState.from_json(p) for i, p in data["partitions"].items()},
            configs=dict(data.get("configs", {})),
        )


@dataclass
class ClusterImage:
    """Everything the store holds, as loaded at start-up."""

    cluster_id: str
    topics: dict[str, TopicRecord] = field(default_factory=dict)
    #: Dynamic broker configs by scope: "" for the cluster-wide default, else a broker id.
    broker_configs: dict[str, dict[str, str]] = field(default_factory=dict)
    next_producer_id: int = 0
    #: Security entries by kind ("acls", "quotas"): key -> value, text (see
    #: :meth:`MetaStore.update_security`).
    security: dict[str, dict[str, str]] = field(default_factory=dict)


class TopicExistsError(Exception):
    """A create lost the compare-and-swap: the topic is already there."""


class BrokerIdInUseError(Exception):
    """Another live broker holds this broker id; ``holder`` is its registration."""

    def __init__(self, holder: BrokerInfo) -> None:
        super().__init__(
            f"broker id {holder.broker_id} is already registered by a live broker at "
            f"{holder.host}:{holder.port}; give this broker another --broker-id (node.id), or stop "
            "the other one (a dead broker's registration lapses after broker.session.timeout.ms)"
        )
        self.holder = holder


class StaleEpochError(Exception):
    """An alter_partition lost its compare-and-swap: the partition epoch has moved on."""


@dataclass(frozen=True)
class BrokerInfo:
    """A live broker as clients reach it (what Metadata and DescribeCluster list).

    ``host``/``port`` are its inter-broker listener's endpoint (what replicas fetch
    from); ``endpoints`` has one ``(host, port)`` per listener name, so Metadata can
    answer each client with the endpoints of the listener it came in on, as Kafka does.
    """

    broker_id: int
    host: str
    port: int
    rack: str | None = None
    #: in controlled shutdown (KRaft's ``inControlledShutdown``): still serving, but the
    #: controller moves its leaderships away and takes it out of the ISRs
    shutting_down: bool = False
    endpoints: tuple[tuple[str, str, int], ...] = ()  # (listener name, host, port)

    def endpoint(self, listener: str) -> tuple[str, int] | None:
        """Where a client of ``listener`` reaches this broker; None if it has no such
        listener (Kafka then leaves the broker out). A broker that registered no
        listeners (one from before they existed) answers with its single endpoint."""
        if not self.endpoints:
            return self.host, self.port
        for name, host, port in self.endpoints:
            if name == listener:
                return host, port
        return None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"broker_id": self.broker_id, "host": self.host, "port": self.port, "rack": self.rack}
        if self.shutting_down:
            data["shutting_down"] = True
        if self.endpoints:
            data["endpoints"] = [list(e) for e in self.endpoints]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BrokerInfo:
        endpoints = tuple((str(n), str(h), int(p)) for n, h, p in data.get("endpoints", ()))
        return cls(int(data["broker_id"]), str(data["host"]), int(data["port"]), data.get("rack"),
                   bool(data.get("shutting_down", False)), endpoints)


@dataclass(frozen=True)
class ControllerInfo:
    """Who is the controller, and since when: ``epoch`` grows with every election, so a
    decision stamped with an older epoch can be told apart and refused (fencing)."""

    broker_id: int
    epoch: int


class Session:
    """Until when this broker may act on its membership: lead partitions, coordinate
    groups, act as controller (the leader's self-fencing).

    Theory of operation: a cluster broker's registration lives under a lease that etcd
    ends no earlier than its TTL after the last renewal etcd received, and a renewal is
    received after it is sent. So a renewal sent at monotonic time ``t`` and answered
    keeps the lease alive until at least ``t + TTL``; the store sets ``valid_until`` a
    safety margin before that (:meth:`renewed`). Past it, the broker may already have
    been replaced by a controller that saw its lease expire, so it answers as a
    non-leader (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR) without waiting to hear so.
    The check is one clock read, made where it matters: on every leadership test, so
    a process resumed after a freeze refuses before any timer of its has run.

    Once it has lapsed (or before the first registration) the session stays
    *suspended* whatever later renewals say, until :meth:`resume`: the broker must
    first re-read the metadata (who leads now) and apply it, or it would act on a
    stale image. A single node's session never lapses.
    """

    __slots__ = ("valid_until", "_renewed_until", "suspended")

    def __init__(self, *, held: bool = True) -> None:
        #: monotonic seconds; the hot path compares ``time.monotonic()`` with it
        self.valid_until = math.inf if held else -math.inf
        self._renewed_until = self.valid_until
        self.suspended = not held

    def valid(self) -> bool:
        return time.monotonic() < self.valid_until

    def renewed(self, until: float) -> bool:
        """A renewal proved the lease alive until ``until`` (margin applied). Returns
        False when the session had lapsed or is suspended: then it stays suspended
        until the caller has had the metadata re-read and calls :meth:`resume`."""
        self._renewed_until = until
        if self.suspended or time.monotonic() >= self.valid_until:
            self.suspend()
            return False
        self.valid_until = until
        return True

    def suspend(self) -> None:
        self.suspended = True
        self.valid_until = -math.inf

    def resume(self) -> None:
        """The metadata has been re-read and applied: act on it again (if the last
        renewal still covers now)."""
        self.suspended = False
        self.valid_until = self._renewed_until


# Changes a watch delivers. ``revision`` is the store's order: strictly increasing
# between changes of different writes; one write may yield several changes.


@dataclass(frozen=True)
class TopicChanged:
    revision: int
    topic: TopicRecord


@dataclass(frozen=True)
class TopicDeleted:
    revision: int
    name: str
    topic_id: uuid.UUID


@dataclass(frozen=True)
class PartitionChanged:
    revision: int
    topic: str
    index: int
    state: PartitionState


@dataclass(frozen=True)
class BrokerChanged:
    """A broker registered (``info`` set) or its session ended (``info`` None)."""

    revision: int
    broker_id: int
    info: BrokerInfo | None


@dataclass(frozen=True)
class ControllerChanged:
    """A controller was elected, or the role is vacant (``controller`` None)."""

    revision: int
    controller: ControllerInfo | None


@dataclass(frozen=True)
class BrokerConfigsChanged:
    revision: int
    scope: str
    configs: dict[str, str]


@dataclass(frozen=True)
class SecurityChanged:
    """One security entry (an ACL binding, a client quota) was set or, with ``value``
    None, removed."""

    revision: int
    kind: str
    key: str
    value: str | None


@dataclass(frozen=True)
class SessionChanged:
    """This broker's session lapsed (``valid`` False: it may have been replaced, it
    stops acting as leader), or it was registered again and every change up to
    ``revision`` has been delivered before this one (``valid`` True: the reader applies
    them, then calls ``session.resume()``)."""

    revision: int
    valid: bool


MetaChange = (
    TopicChanged
    | TopicDeleted
    | PartitionChanged
    | BrokerChanged
    | ControllerChanged
    | BrokerConfigsChanged
    | SecurityChanged
    | SessionChanged
)


class MetaWatch:
    """An ordered stream of :data:`MetaChange`; iterate with ``async for``.

    Registered when created, so nothing published afterwards is missed; an unbounded
    queue, since metadata changes are few and dropping one would desynchronise the
    reader. ``close()`` ends the iteration.
    """

    _END = object()

    def __init__(self, owner: MetaStore) -> None:
        self._owner = owner
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def publish(self, change: MetaChange) -> None:
        self._queue.put_nowait(change)

    def close(self) -> None:
        self._owner._watches.discard(self)
        self._queue.put_nowait(self._END)

    def __aiter__(self) -> MetaWatch:
        return self

    async def __anext__(self) -> MetaChange:
        item = await self._queue.get()
        if item is self._END:
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]


class MetaStore(abc.ABC):
    """What the broker needs of a metadata store.

    Writes made through a store object are applied by its caller, so :meth:`watch` does
    not echo topic, partition or config writes made through the same object; it
    delivers those of other brokers, and every membership and controller change
    (even this store's own, which happen in the background).
    """

    _watches: set[MetaWatch]
    _registered: BrokerInfo | None = None
    _controller: ControllerInfo | None = None
    #: a single node's membership never lapses; the etcd backend replaces it
    session: Session = Session()

    @abc.abstractmethod
    async def load(self) -> ClusterImage:
        """Read (or initialise) the cluster's metadata."""

    @abc.abstractmethod
    async def create_topic(self, topic: TopicRecord) -> None:
        """Add a topic; raises TopicExistsError if the name is taken."""

    @abc.abstractmethod
    async def get_topic(self, name: str) -> TopicRecord | None:
        """The stored record of a topic, or None (lets a broker heal a half-applied create)."""

    @abc.abstractmethod
    async def update_topic(self, topic: TopicRecord) -> None:
        """Replace an existing topic's record (partitions added, configs changed)."""

    @abc.abstractmethod
    async def delete_topic(self, name: str) -> None:
        """Remove a topic's record."""

    @abc.abstractmethod
    async def set_broker_configs(self, scope: str, configs: dict[str, str]) -> None:
        """Replace the dynamic broker configs of a scope ("" = cluster default, or a broker id)."""

    @abc.abstractmethod
    async def allocate_producer_ids(self, count: int) -> int:
        """Reserve ``count`` producer ids, unique in the cluster forever; returns the first."""

    @abc.abstractmethod
    async def update_security(self, kind: str, changes: dict[str, str | None]) -> None:
        """Set (or, for None, remove) entries of a security kind in one atomic write:
        ``"acls"`` (key: a binding, value: "") or ``"quotas"`` (key: an entity, value:
        its quotas). One key per entry, so brokers that change different entries at
        once never overwrite each other."""
    def scram_credentials(self) -> dict[str, dict[str, dict[str, Any]]]:
        """SCRAM credentials as last seen, {user: {mechanism: credential as JSON}} (no
        I/O: read at every authentication). Only salted, hashed keys (RFC 5802)."""
        return getattr(self, "_scram", {})

    async def set_scram_credentials(self, user: str, mechanisms: dict[str, dict[str, Any]]) -> None:
        """Replace a user's SCRAM credentials (empty: the user has none). In memory here;
        the file and etcd backends persist them."""
        scram = self.__dict__.setdefault("_scram", {})
        if mechanisms:
            scram[user] = dict(mechanisms)
        else:
            scram.pop(user, None)

    async def alter_partition(
        self, topic: str, index: int, state: PartitionState, expected_epoch: int, *, controller_epoch: int = 0
    ) -> None:
        """Replace one partition's state if its partition epoch is still ``expected_epoch``
        (Kafka's AlterPartition rule); ``state.partition_epoch`` must be one more. Raises
        StaleEpochError when the epoch has moved, KeyError for an unknown partition.
        A controller's decision passes its ``controller_epoch``: the write then also
        requires that it is still the controller (a deposed one cannot overwrite)."""
        image = await self.load()
        record = image.topics.get(topic)
        if record is None or index not in record.partitions:
            raise KeyError(f"{topic}-{index}")
        if record.partitions[index].partition_epoch != expected_epoch:
            raise StaleEpochError(f"{topic}-{index}: epoch {record.partitions[index].partition_epoch}")
        record.partitions[index] = state
        await self.update_topic(record)

    # membership and leadership: a single node is a cluster of one -------------------

    async def register_broker(
        self, info: BrokerInfo, session_timeout_ms: int, heartbeat_interval_ms: int | None = None
    ) -> None:
        """Join the cluster as ``info`` under a session lease renewed in the background
        (every ``heartbeat_interval_ms``, at least three times per session) until
        :meth:`close`; a broker that stops renewing it leaves after
        ``session_timeout_ms``. Raises BrokerIdInUseError if a live broker has the id."""
        if self._registered is not None and self._registered.broker_id != info.broker_id:
            raise BrokerIdInUseError(self._registered)
        self._registered = info
        self._publish(BrokerChanged(0, info.broker_id, info))

    async def end_session_of(self, info: BrokerInfo, confirm: Callable[[], Awaitable[bool]]) -> bool:
        """End another broker's registration ``info``, found dead (its endpoint refuses
        connections), rather than wait for its session to time out. ``confirm`` is
        awaited after the registration was read and must prove its process gone then
        (a registration made after that proof is left alone); True if it was ended.
        A single node has no others."""
        return False

    def brokers(self) -> list[BrokerInfo]:
        """The live brokers by id, as last seen (no I/O: read it on every request)."""
        return [self._registered] if self._registered is not None else []

    async def begin_controlled_shutdown(self) -> None:  # noqa: B027 - optional hook
        """Mark this broker's registration as shutting down (it stays registered), so the
        controller moves its leaderships to other in-sync replicas and takes it out of
        the ISRs. A single node has nobody to hand over to: nothing to do."""

    async def campaign(self) -> None:
        """Compete for the controller role, in the background, for as long as this broker
        is registered; returns after the first attempt. Outcomes arrive as
        ControllerChanged on every watch, and in :meth:`controller`."""
        if self._registered is None:
            raise RuntimeError("register_broker() before campaign()")
        self._controller = ControllerInfo(self._registered.broker_id, 1)
        self._publish(ControllerChanged(0, self._controller))

    def controller(self) -> ControllerInfo | None:
        """The controller as last seen, or None while the role is vacant."""
        return self._controller

    def watch(self) -> MetaWatch:
        """A stream of the changes from now on, in the store's order (see the class)."""
        if not hasattr(self, "_watches"):
            self._watches = set()
        watch = MetaWatch(self)
        self._watches.add(watch)
        return watch

    def _publish(self, change: MetaChange) -> None:
        for watch in list(getattr(self, "_watches", ())):
            watch.publish(change)

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (and, in a cluster, leave it: the session ends)."""


def apply_security(security: dict[str, dict[str, str]], kind: str, changes: dict[str, str | None]) -> None:
    """Fold :meth:`MetaStore.update_security` changes into an image's ``security``,
    replacing the kind's dictionary (never editing it: a saved copy stays intact)."""
    entries = dict(security.get(kind, {}))
    for key, value in changes.items():
        if value is None:
            entries.pop(key, None)
        else:
            entries[key] = value
    security[kind] = entries


def new_cluster_id() -> str:
    """A cluster id in Kafka's form: a base64url UUID without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
