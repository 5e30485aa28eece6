"""Cluster metadata in etcd: topics, partition states, live brokers and the controller.

File format (etcd keys; values are UTF-8 JSON unless said otherwise). ``ROOT`` is
``/moldau/<cluster>/`` where ``<cluster>`` is the path of the ``etcd://`` URL
(``default`` when it has none), so several clusters can share one etcd::

    ROOT cluster_id                      the cluster id, text; created once (CAS on absence)
    ROOT topics/<name>                   {"name", "topic_id", "configs", "partitions": N}
    ROOT partitions/<topic_id>/<index>   PartitionState: {"leader", "leader_epoch",
                                         "replicas", "isr", "partition_epoch"}
    ROOT brokers/<id>                    BrokerInfo {"broker_id", "host", "port", "rack"},
                                         bound to the broker's session lease
    ROOT controller                      {"broker_id"}, bound to the controller's lease;
                                         its create_revision is the controller epoch
    ROOT configs/brokers/<scope>         dynamic broker configs; scope "_default" is the
                                         cluster-wide default, else a broker id
    ROOT producer_ids/next               the next free producer id, decimal text

Why this shape: one key per partition state, so AlterPartition-style updates are a
compare-and-swap on a single small key; partitions keyed by topic *id*, so a topic
deleted and re-created under the same name never mixes states, and a create that loses
its race leaves nothing a reader can mistake for the winner's. A topic key is written after its partitions (in the same transaction, where etcd
reports operations in the order written, or after earlier transactions for topics with
more partitions than one transaction may hold), so a watcher has every partition of a
topic when the topic key arrives.

Every write is a transaction with a compare (create: the topic key is absent;
allocation: the counter is unchanged; broker and controller keys: absent), so two
brokers racing never both win. Readers watch ``ROOT`` from the revision they loaded and
see every change in etcd's revision order; a reader whose resume point was compacted
away reloads a snapshot and reports the difference.

aetcd (asyncio, gRPC) is imported when a store is created, never at module import, so
``moldau serve`` without ``--cluster`` does not pay for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from moldau.metastore.store import (
    BrokerChanged,
    BrokerConfigsChanged,
    BrokerIdInUseError,
    BrokerInfo,
    ClusterImage,
    ControllerChanged,
    ControllerInfo,
    MetaStore,
    PartitionChanged,
    PartitionState,
    SecurityChanged,
    Session,
    SessionChanged,
    StaleEpochError,
    TopicChanged,
    TopicDeleted,
    TopicExistsError,
    TopicRecord,
    apply_security,
    new_cluster_id,
)

log = logging.getLogger(__name__)

#: etcd refuses transactions of more operations than --max-txn-ops (128 by default).
MAX_TXN_OPS = 100
#: gRPC's reconnection backoff (default 1 s growing to 120 s) would leave a broker
#: disconnected for seconds after etcd is back; metadata is small, retry often.
GRPC_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 500,
}


def _fence_after_s(ttl_s: int) -> float:
    """How long after sending an answered renewal the session still holds: the lease's
    TTL less a safety margin (a fifth, at least 0.1 s) for scheduling delays between
    the clock read and the broker's last act as leader."""
    return ttl_s - max(0.1, ttl_s / 5)


def _reason(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    return str(details() if callable(details) else exc) or type(exc).__name__


@dataclass(frozen=True)
class EtcdTarget:
    """Where the cluster's metadata lives, parsed from ``etcd://H:P[,H:P...][/cluster]``."""

    endpoints: tuple[tuple[str, int], ...]
    cluster: str = "default"

    @classmethod
    def parse(cls, url: str) -> EtcdTarget:
        parts = urlsplit(url)
        if parts.scheme != "etcd" or not parts.netloc:
            raise ValueError(f"expected etcd://HOST:PORT[,HOST:PORT...][/CLUSTER], got {url!r}")
        endpoints = []
        for item in parts.netloc.split(","):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected HOST:PORT in {url!r}, got {item!r}")
            endpoints.append((host.strip("[]"), int(port)))
        cluster = parts.path.strip("/") or "default"
        if "/" in cluster:
            raise ValueError(f"the cluster name in {url!r} may not contain '/'")
        return cls(tuple(endpoints), cluster)

    def grpc_host_port(self) -> tuple[str, int]:
        """aetcd dials ``f"{host}:{port}"``; gRPC's ``ipv4:`` target lists several
        addresses and fails over between them, so several IPv4 endpoints are joined
        into one target. Host names: the first endpoint only."""
        if len(self.endpoints) > 1 and all(_is_ipv4(h) for h, _ in self.endpoints):
            head = ",".join(f"{h}:{p}" for h, p in self.endpoints[:-1])
            last_host, last_port = self.endpoints[-1]
            return f"ipv4:{head},{last_host}", last_port
        if len(self.endpoints) > 1:
            log.warning("several etcd endpoints given by name: only %s:%d is used", *self.endpoints[0])
        return self.endpoints[0]


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and 0 <= int(p) <= 255 for p in parts)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class EtcdMetaStore(MetaStore):
    """The etcd backend. One gRPC channel; a background watch keeps an image of the
    cluster (topics, partitions, brokers, controller) current and feeds watchers."""

    def __init__(self, target: EtcdTarget | str, *, timeout_s: float = 10.0) -> None:
        import aetcd  # lazily: 0.1-0.15 s of imports that a single broker never needs
        import aetcd.rpc

        self._rpc = aetcd.rpc
        self.target = EtcdTarget.parse(target) if isinstance(target, str) else target
        host, port = self.target.grpc_host_port()
        self._client = aetcd.Client(host=host, port=port, timeout=timeout_s, options=GRPC_OPTIONS)
        self.root = f"/moldau/{self.target.cluster}/".encode()
        self._watches = set()
        # The image as last seen, with the revision each key was last changed at
        # (deletions included), so stale or echoed events are recognised and skipped.
        self._key_revision: dict[bytes, int] = {}
        self._inflight: dict[bytes, list[bytes | None]] = {}
        self._topics: dict[str, dict[str, Any]] = {}
        self._partitions: dict[str, dict[int, PartitionState]] = {}
        self._brokers: dict[int, BrokerInfo] = {}
        self._broker_configs: dict[str, dict[str, str]] = {}
        self._security: dict[str, dict[str, str]] = {}
        self._scram: dict[str, dict[str, dict[str, Any]]] = {}  # kept current by the watch
        self._controller_vacant = asyncio.Event()
        self._lease: Any = None
        #: not held until registered and caught up with the metadata
        self.session = Session(held=False)
        self._session_timeout_ms = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self._watch_call: Any = None
        self._closed = False

    # keys -----------------------------------------------------------------------------

    def _key(self, *parts: str | int) -> bytes:
        return self.root + "/".join(str(p) for p in parts).encode()

    def _topic_key(self, name: str) -> bytes:
        return self._key("topics", name)

    def _partition_key(self, topic_id: str, index: int) -> bytes:
        return self._key("partitions", topic_id, index)

    def _scope_key(self, scope: str) -> bytes:
        return self._key("configs", "brokers", scope or "_default")

    def _security_key(self, kind: str, key: str) -> bytes:
        return self._key("security", kind, key)

    # raw transactions -------------------------------------------------------------------

    async def _txn(
        self,
        compare: list[Any],
        success: list[Any],
        failure: list[Any] | None = None,
        own: dict[bytes, bytes | None] | None = None,
    ) -> Any:
        """One etcd transaction; returns the raw TxnResponse (its header carries the
        revision of the write, which aetcd's own ``transaction`` does not hand back).

        ``own`` names the keys (and values, None for a deletion) that the caller applies
        itself: the watch may report them before this call returns, so it recognises
        them by value while the call is in flight and does not echo them.
        """
        rpc = self._rpc
        await self._client.connect()
        request = rpc.TxnRequest(
            compare=[c.build_message() for c in compare],
            success=success,
            failure=failure or [],
        )
        for key, value in (own or {}).items():
            self._inflight.setdefault(key, []).append(value)
        try:
            response = await self._client.kvstub.Txn(request, timeout=self._client._timeout)
        finally:
            for key, value in (own or {}).items():
                pending = self._inflight[key]
                pending.remove(value)
                if not pending:
                    del self._inflight[key]
        if response.succeeded and own:
            self._noted(response.header.revision, *own)
        return response

    def _put(self, key: bytes, value: bytes, lease: int = 0) -> Any:
        return self._rpc.RequestOp(request_put=self._rpc.PutRequest(key=key, value=value, lease=lease))

    def _get(self, key: bytes) -> Any:
        return self._rpc.RequestOp(request_range=self._rpc.RangeRequest(key=key))

    def _delete(self, key: bytes, prefix: bool = False) -> Any:
        range_end = _prefix_end(key) if prefix else b""
        return self._rpc.RequestOp(request_delete_range=self._rpc.DeleteRangeRequest(key=key, range_end=range_end))

    def _absent(self, key: bytes) -> Any:
        return self._client.transactions.create(key) == 0

    def _noted(self, revision: int, *keys: bytes) -> None:
        for key in keys:
            self._key_revision[key] = max(self._key_revision.get(key, 0), revision)

    # load -------------------------------------------------------------------------------

    async def load(self) -> ClusterImage:
        response = await self._txn(
            [self._absent(self._key("cluster_id"))],
            [self._put(self._key("cluster_id"), new_cluster_id().encode())],
        )
        if response.succeeded:
            log.info("initialised cluster metadata under %s", self.root.decode())
        snapshot = await self._client.get_prefix(self.root)
        revision = snapshot.header.revision
        cluster_id = ""
        next_producer_id = 0
        for kv in snapshot:
            key = bytes(kv.key)
            self._key_revision[key] = kv.mod_revision
            rest = key[len(self.root):].decode()
            if rest == "cluster_id":
                cluster_id = kv.value.decode()
            elif rest == "producer_ids/next":
                next_producer_id = int(kv.value)
            else:
                self._absorb(rest, kv.value, kv.create_revision)
        if self._watch_task is None:
            self._watch_task = asyncio.ensure_future(self._watch_loop(revision + 1))
        return ClusterImage(
            cluster_id=cluster_id,
            topics={name: self._record(name) for name in self._topics},
            broker_configs=copy.deepcopy(self._broker_configs),
            next_producer_id=next_producer_id,
            security=copy.deepcopy(self._security),
        )

    def _record(self, name: str) -> TopicRecord:
        raw = self._topics[name]
        states = self._partitions.get(raw["topic_id"], {})
        return TopicRecord(
            name=name,
            topic_id=uuid.UUID(raw["topic_id"]),
            partitions={i: copy.deepcopy(states[i]) for i in sorted(states) if i < raw["partitions"]},
            configs=dict(raw["configs"]),
        )

    def _absorb(self, rest: str, value: bytes | None, create_revision: int) -> Any:
        """Fold one key's new value (None: deleted) into the image; returns what changed
        for watchers, or None."""
        kind, _, tail = rest.partition("/")
        if kind == "topics":
            if value is None:
                raw = self._topics.pop(tail, None)
                if raw is None:
                    return None
                self._partitions.pop(raw["topic_id"], None)
                return ("topic_deleted", tail, uuid.UUID(raw["topic_id"]))
            self._topics[tail] = json.loads(value)
            return ("topic", tail)
        if kind == "partitions":
            topic_id, _, index = tail.partition("/")
            if value is None:
                self._partitions.get(topic_id, {}).pop(int(index), None)
                return None
            state = PartitionState.from_json(json.loads(value))
            self._partitions.setdefault(topic_id, {})[int(index)] = state
            for name, raw in self._topics.items():
                if raw["topic_id"] == topic_id and int(index) < raw["partitions"]:
                    return ("partition", name, int(index), state)
            return None  # its topic key follows (create) or never comes (lost race)
        if kind == "brokers":
            broker_id = int(tail)
            if value is None:
                self._brokers.pop(broker_id, None)
                return ("broker", broker_id, None)
            info = BrokerInfo.from_json(json.loads(value))
            self._brokers[broker_id] = info
            return ("broker", broker_id, info)
        if kind == "controller":
            if value is None:
                self._controller = None
                self._controller_vacant.set()
                return ("controller", None)
            self._controller = ControllerInfo(int(json.loads(value)["broker_id"]), create_revision)
            return ("controller", self._controller)
        if kind == "scram":
            if value is None:
                self._scram.pop(tail, None)
            else:
                self._scram[tail] = dict(json.loads(value))
            return None
        if kind == "configs" and tail.startswith("brokers/"):
            scope = tail[len("brokers/"):]
            scope = "" if scope == "_default" else scope
            if value is None:
                self._broker_configs.pop(scope, None)
                return ("configs", scope, {})
            self._broker_configs[scope] = dict(json.loads(value))
            return ("configs", scope, dict(self._broker_configs[scope]))
        if kind == "security":
            sub, _, entry = tail.partition("/")
            entries = self._security.setdefault(sub, {})
            if value is None:
                if entries.pop(entry, None) is None:
                    return None
                return ("security", sub, entry, None)
            entries[entry] = value.decode()
            return ("security", sub, entry, entries[entry])
        return None

    # the watch --------------------------------------------------------------------------

    async def _watch_loop(self, start_revision: int) -> None:
        """Follow every change under ROOT in revision order; reconnect after errors."""
        next_revision = start_revision
        backoff = 0.0
        while not self._closed:
            try:
                async for event in self._watch_stream(next_revision):
                    # One event at a time: within one transaction etcd reports the
                    # operations in the order written, and writes put partition keys
                    # before the topic key that names them.
                    next_revision = self._apply_event(event) + 1
                    if backoff:
                        log.info("etcd watch resumed at revision %d", next_revision - 1)
                        backoff = 0.0
            except asyncio.CancelledError:
                raise
            except _HistoryCompacted as exc:
                # etcd dropped the history we would resume from: read it all again.
                log.warning("etcd history compacted (%s); reloading the metadata", exc)
                try:
                    next_revision = await self._resync() + 1
                except Exception as again:
                    log.warning("reloading the metadata from etcd failed: %s", again)
                    await asyncio.sleep(1.0)
            except Exception as exc:  # etcd restarting, connection lost: resume in order
                if self._closed:
                    return
                if not backoff:
                    log.warning("etcd watch interrupted (%s); resuming from revision %d", exc, next_revision)
                backoff = min(0.5, max(0.1, backoff * 2))
                await asyncio.sleep(backoff)

    async def _watch_stream(self, start_revision: int) -> AsyncIterator[Any]:
        """The events of one etcd Watch stream on ROOT from ``start_revision``.

        Driven through the generated gRPC stub in read/write style rather than aetcd's
        shared Watcher: that one's shutdown can wait forever on a stream a cancelled
        task left behind (seen as a hung test teardown), while a call of our own is
        simply cancelled. Raises :class:`_HistoryCompacted` when etcd no longer has
        ``start_revision``, and ConnectionError when the stream ends.
        """
        import grpc.aio

        rpc = self._rpc
        await self._client.connect()
        call = rpc.WatchStub(self._client.channel).Watch(metadata=self._client.metadata)
        self._watch_call = call
        try:
            create = rpc.WatchCreateRequest(
                key=self.root, range_end=_prefix_end(self.root), start_revision=start_revision
            )
            await call.write(rpc.WatchRequest(create_request=create))
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    raise ConnectionError("etcd closed the watch stream")
                if response.compact_revision:
                    raise _HistoryCompacted(f"compacted at revision {response.compact_revision}")
                if response.canceled:
                    raise ConnectionError(f"etcd cancelled the watch: {response.cancel_reason}")
                for event in response.events:
                    yield event
        finally:
            self._watch_call = None
            call.cancel()

    def _live_keys(self) -> set[bytes]:
        """The keys the image holds now (what a snapshot is compared against)."""
        keys = {self._topic_key(name) for name in self._topics}
        for topic_id, states in self._partitions.items():
            keys.update(self._partition_key(topic_id, index) for index in states)
        keys.update(self._key("brokers", broker_id) for broker_id in self._brokers)
        keys.update(self._scope_key(scope) for scope in self._broker_configs)
        keys.update(self._security_key(kind, key) for kind, entries in self._security.items() for key in entries)
        if self._controller is not None:
            keys.add(self._key("controller"))
        return keys

    async def _resync(self) -> int:
        """Bring the image to a fresh snapshot, publishing what changed as if watched:
        deletions first, then partition keys before the topic keys that name them."""
        snapshot = await self._client.get_prefix(self.root)
        revision = snapshot.header.revision
        present = {bytes(kv.key): kv for kv in snapshot}
        for key in sorted(self._live_keys() - present.keys(), key=lambda k: b"/topics/" not in k):
            self._apply_change(key, None, 0, revision)
        for key in sorted(present, key=lambda k: b"/topics/" in k):
            kv = present[key]
            self._apply_change(key, bytes(kv.value), kv.create_revision, kv.mod_revision)
        return revision

    def _apply_event(self, event: Any) -> int:
        kv = event.kv
        deleted = event.type == self._rpc.Event.EventType.DELETE
        self._apply_change(bytes(kv.key), None if deleted else bytes(kv.value), kv.create_revision, kv.mod_revision)
        return int(kv.mod_revision)

    def _apply_change(self, key: bytes, value: bytes | None, create_revision: int, revision: int) -> None:
        """Fold one key's change (``value`` None: deleted) into the image and tell the
        watchers, unless it is older than what the image has or our own write."""
        if revision <= self._key_revision.get(key, 0):
            return  # our own write (already applied by the caller) or older
        self._key_revision[key] = revision
        if key in self._inflight and value in self._inflight[key]:
            return  # our own write, reported before its call returned
        rest = key[len(self.root):].decode()
        if rest in ("cluster_id", "producer_ids/next"):
            return
        change = self._absorb(rest, value, create_revision)
        if change is not None:
            self._publish(self._to_change(revision, change))

    def _to_change(self, revision: int, change: tuple[Any, ...]) -> Any:
        kind = change[0]
        if kind == "topic":
            return TopicChanged(revision, self._record(change[1]))
        if kind == "topic_deleted":
            return TopicDeleted(revision, change[1], change[2])
        if kind == "partition":
            return PartitionChanged(revision, change[1], change[2], copy.deepcopy(change[3]))
        if kind == "broker":
            return BrokerChanged(revision, change[1], change[2])
        if kind == "controller":
            return ControllerChanged(revision, change[1])
        if kind == "security":
            return SecurityChanged(revision, change[1], change[2], change[3])
        return BrokerConfigsChanged(revision, change[1], change[2])

    # topics -----------------------------------------------------------------------------

    def _topic_value(self, topic: TopicRecord) -> dict[str, Any]:
        return {
            "name": topic.name,
            "topic_id": str(topic.topic_id),
            "configs": dict(topic.configs),
            "partitions": len(topic.partitions),
        }

    async def _write_partitions_first(self, topic: TopicRecord, states: dict[int, PartitionState]) -> list[Any]:
        """Partition puts for a topic: those that fit go into the caller's transaction,
        the rest are written ahead in chunks (under the topic id, invisible to readers
        until the topic key names them)."""
        tid = str(topic.topic_id)
        puts = [(self._partition_key(tid, i), _dumps(s.to_json())) for i, s in sorted(states.items())]
        while len(puts) > MAX_TXN_OPS - 1:
            chunk, puts = puts[:MAX_TXN_OPS], puts[MAX_TXN_OPS:]
            response = await self._txn([], [self._put(k, v) for k, v in chunk], own=dict(chunk))
            self._noted(response.header.revision, *(k for k, _ in chunk))
        return puts

    async def create_topic(self, topic: TopicRecord) -> None:
        key = self._topic_key(topic.name)
        puts = await self._write_partitions_first(topic, topic.partitions)
        value = _dumps(self._topic_value(topic))
        response = await self._txn(
            [self._absent(key)],
            [self._put(k, v) for k, v in puts] + [self._put(key, value)],
            own={key: value, **dict(puts)},
        )
        if not response.succeeded:
            # Lost the race: drop whatever was written ahead under our (unused) topic id.
            await self._txn([], [self._delete(self._key("partitions", str(topic.topic_id), ""), prefix=True)])
            raise TopicExistsError(topic.name)
        revision = response.header.revision
        self._noted(revision, key, *(k for k, _ in puts))
        self._topics[topic.name] = self._topic_value(topic)
        self._partitions[str(topic.topic_id)] = copy.deepcopy(topic.partitions)

    async def get_topic(self, name: str) -> TopicRecord | None:
        """The topic as etcd holds it now (not as last seen): for healing a broker that
        missed applying it."""
        current = await self._client.get(self._topic_key(name))
        if current is None:
            return None
        raw = json.loads(current.value)
        states = await self._client.get_prefix(self._key("partitions", raw["topic_id"], ""))
        partitions = {}
        for kv in states:
            index = int(bytes(kv.key).rsplit(b"/", 1)[1])
            if index < raw["partitions"]:
                partitions[index] = PartitionState.from_json(json.loads(kv.value))
        return TopicRecord(name, uuid.UUID(raw["topic_id"]), dict(sorted(partitions.items())), dict(raw["configs"]))

    async def update_topic(self, topic: TopicRecord) -> None:
        """A topic's configs or new partitions. Existing partitions' states change only
        by :meth:`alter_partition` (compare-and-swap): the caller's copy of them may lag
        the store, and writing it back would undo a newer ISR, election or reassignment."""
        key = self._topic_key(topic.name)
        known = self._partitions.get(str(topic.topic_id), {})
        changed = {i: s for i, s in topic.partitions.items() if i not in known}
        puts = await self._write_partitions_first(topic, changed)
        value = _dumps(self._topic_value(topic))
        response = await self._txn(
            [self._client.transactions.create(key) > 0],
            [self._put(k, v) for k, v in puts] + [self._put(key, value)],
            own={key: value, **dict(puts)},
        )
        if not response.succeeded:
            raise KeyError(f"topic {topic.name!r} does not exist")
        self._noted(response.header.revision, key, *(k for k, _ in puts))
        self._topics[topic.name] = self._topic_value(topic)
        self._partitions.setdefault(str(topic.topic_id), {}).update(copy.deepcopy(changed))

    async def delete_topic(self, name: str) -> None:
        key = self._topic_key(name)
        raw = self._topics.get(name)
        ops = [self._delete(key)]
        if raw is not None:
            ops.append(self._delete(self._key("partitions", raw["topic_id"], ""), prefix=True))
        response = await self._txn([], ops, own={key: None})
        self._noted(response.header.revision, key)
        if raw is not None:
            self._topics.pop(name, None)
            self._partitions.pop(raw["topic_id"], None)

    async def alter_partition(
        self, topic: str, index: int, state: PartitionState, expected_epoch: int, *, controller_epoch: int = 0
    ) -> None:
        raw = self._topics.get(topic)
        if raw is None:
            raise KeyError(f"{topic}-{index}")
        key = self._partition_key(raw["topic_id"], index)
        current = await self._client.get(key)
        if current is None:
            raise KeyError(f"{topic}-{index}")
        epoch = int(json.loads(current.value)["partition_epoch"])
        if epoch != expected_epoch:
            raise StaleEpochError(f"{topic}-{index}: partition epoch is {epoch}, not {expected_epoch}")
        value = _dumps(state.to_json())
        compare = [self._client.transactions.mod(key) == current.mod_revision]
        if controller_epoch:
            # still the controller: a deposed one (its lease lapsed) cannot overwrite
            compare.append(self._client.transactions.create(self._key("controller")) == controller_epoch)
        response = await self._txn(compare, [self._put(key, value)], own={key: value})
        if not response.succeeded:
            raise StaleEpochError(f"{topic}-{index}: changed concurrently, or no longer the controller")
        self._noted(response.header.revision, key)
        self._partitions.setdefault(raw["topic_id"], {})[index] = copy.deepcopy(state)

    # configs and producer ids -----------------------------------------------------------

    async def set_broker_configs(self, scope: str, configs: dict[str, str]) -> None:
        key = self._scope_key(scope)
        value = _dumps(dict(configs))
        response = await self._txn([], [self._put(key, value)], own={key: value})
        self._noted(response.header.revision, key)
        self._broker_configs[scope] = dict(configs)

    async def update_security(self, kind: str, changes: dict[str, str | None]) -> None:
        ops = []
        own: dict[bytes, bytes | None] = {}
        for entry, value in changes.items():
            key = self._security_key(kind, entry)
            if value is None:
                ops.append(self._delete(key))
                own[key] = None
            else:
                ops.append(self._put(key, value.encode()))
                own[key] = value.encode()
        if not ops:
            return
        await self._txn([], ops, own=own)
        apply_security(self._security, kind, changes)
    async def set_scram_credentials(self, user: str, mechanisms: dict[str, dict[str, Any]]) -> None:
        key = self._key("scram", user)
        if mechanisms:
            value = _dumps(dict(mechanisms))
            response = await self._txn([], [self._put(key, value)], own={key: value})
            self._scram[user] = dict(mechanisms)
        else:
            response = await self._txn([], [self._delete(key)], own={key: None})
            self._scram.pop(user, None)
        self._noted(response.header.revision, key)

    async def allocate_producer_ids(self, count: int) -> int:
        """Compare-and-swap on the counter until this broker's increment wins."""
        key = self._key("producer_ids", "next")
        while True:
            current = await self._client.get(key)
            if current is None:
                first, compare = 0, self._absent(key)
            else:
                first, compare = int(current.value), self._client.transactions.mod(key) == current.mod_revision
            response = await self._txn([compare], [self._put(key, str(first + count).encode())])
            if response.succeeded:
                return first

    # membership -------------------------------------------------------------------------

    async def register_broker(
        self, info: BrokerInfo, session_timeout_ms: int, heartbeat_interval_ms: int | None = None
    ) -> None:
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_s = min(heartbeat_interval_ms or session_timeout_ms, session_timeout_ms / 3) / 1000
        await self._register(info)
        self._registered = info
        self._brokers[info.broker_id] = info
        await self._catch_up()
        self._tasks.append(asyncio.ensure_future(self._keep_alive()))
        self._tasks.append(asyncio.ensure_future(self._watch_session()))

    async def _register(self, info: BrokerInfo) -> None:
        ttl = max(1, math.ceil(self._session_timeout_ms / 1000))
        sent = time.monotonic()
        lease = await self._client.lease(ttl)
        key = self._key("brokers", info.broker_id)
        response = await self._txn(
            [self._absent(key)],
            [self._put(key, _dumps(info.to_json()), lease.id)],
            [self._get(key)],
        )
        if not response.succeeded:
            with contextlib.suppress(Exception):
                await lease.revoke()
            kvs = response.responses[0].response_range.kvs
            holder = BrokerInfo.from_json(json.loads(kvs[0].value)) if kvs else info
            raise BrokerIdInUseError(holder)
        self._noted(response.header.revision, key)
        self._lease = lease
        self.session.renewed(sent + _fence_after_s(lease.ttl))

    async def _catch_up(self) -> None:
        """After a (re-)registration or a lapse: bring the image to what etcd holds now
        and deliver it, then tell the watchers the session is good again, in order, so
        the broker resumes leading only where the current metadata says it leads."""
        revision = await self._resync()
        if self._watches:
            self._publish(SessionChanged(revision, True))
        else:
            self.session.resume()

    async def _refresh(self) -> int:
        """One keep-alive of our lease, bounded in time; its TTL (<= 0: it is gone)."""
        await self._client.connect()
        call = self._client.leasestub.LeaseKeepAlive(
            [self._rpc.LeaseKeepAliveRequest(ID=self._lease.id)], timeout=max(0.5, self._heartbeat_s)
        )
        async for reply in call:
            return int(reply.TTL)
        raise ConnectionError("etcd closed the keep-alive stream without an answer")

    async def _keep_alive(self) -> None:
        """Renew the session lease every heartbeat (at least three times per session
        timeout), retrying soon after a failure; each answered renewal extends the
        session (see ``Session``). A lapsed session is resumed only after the metadata
        is re-read; an expired lease (etcd unreachable for too long) is replaced by a
        new registration."""
        assert self._registered is not None
        failed = False
        while not self._closed:
            await asyncio.sleep(min(self._heartbeat_s, 0.1) if failed else self._heartbeat_s)
            try:
                if self._lease is not None:
                    sent = time.monotonic()
                    ttl = await self._refresh()
                    if ttl > 0:
                        if not self.session.renewed(sent + _fence_after_s(ttl)):
                            log.info("etcd reachable again and the session lease alive; re-reading the metadata")
                            await self._catch_up()
                        failed = False
                        continue
                    log.warning("broker session lease expired; registering again")
                    self.session.suspend()
                    self._lease = None
                await self._register(self._registered)
                self._controller_vacant.set()  # let the campaign retry with the new lease
                await self._catch_up()
                failed = False
            except BrokerIdInUseError as exc:
                failed = True
                log.error("%s", exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failed:
                    log.warning("renewing the broker session failed: %s", _reason(exc))
                failed = True

    async def _watch_session(self) -> None:
        """Tell the watchers when the session lapses (the hot path needs no telling: it
        reads the clock), so that requests waiting on this broker's leadership are
        answered at once."""
        reported = True  # until it has held once (the first resume is the reader's)
        while not self._closed:
            left = self.session.valid_until - time.monotonic()
            if left > 0:
                reported = False
                await asyncio.sleep(min(left, 1.0))
                continue
            if not reported:
                log.warning(
                    "no session renewal answered by etcd in time: this broker may have been replaced, "
                    "so it stops acting as leader and controller until it has re-read the metadata"
                )
                self._publish(SessionChanged(0, False))
            reported = True
            await asyncio.sleep(0.05)

    async def end_session_of(self, info: BrokerInfo, confirm: Callable[[], Awaitable[bool]]) -> bool:
        """Revoke the lease of the registration ``info`` if it is still the one read
        before ``confirm`` proved its process gone: its key goes at once, and with it
        the controller key if that broker held it. A process that registers the same
        endpoint later (it must listen first) keeps its new lease."""
        key = self._key("brokers", info.broker_id)
        before = await self._client.get(key)
        if before is None or not before.lease or BrokerInfo.from_json(json.loads(before.value)) != info:
            return False
        if self._lease is not None and before.lease == self._lease.id:
            return False
        if not await confirm():
            return False
        after = await self._client.get(key)
        if after is None or after.create_revision != before.create_revision:
            return False  # it lapsed meanwhile (and maybe registered anew)
        try:
            await self._client.revoke_lease(before.lease)
        except Exception as exc:  # already gone (another broker was faster)
            log.debug("revoking the lease of broker %d: %s", info.broker_id, _reason(exc))
            return False
        return True

    def brokers(self) -> list[BrokerInfo]:
        return [self._brokers[i] for i in sorted(self._brokers)]

    async def begin_controlled_shutdown(self) -> None:
        """Rewrite our registration with ``shutting_down`` under the same lease; CAS on
        its value, so a registration that has lapsed (or was re-made) is not recreated.
        Every broker's watch delivers the change; the controller acts on it."""
        if self._registered is None or self._lease is None:
            return
        key = self._key("brokers", self._registered.broker_id)
        current = _dumps(self._registered.to_json())
        info = dataclasses.replace(self._registered, shutting_down=True)
        value = _dumps(info.to_json())
        if current != value:
            response = await self._txn(
                [self._client.transactions.value(key) == current],
                [self._put(key, value, self._lease.id)],
            )
            if not response.succeeded:
                raise RuntimeError(f"broker {info.broker_id}'s registration is not ours any more")
        self._registered = info

    # controller election ----------------------------------------------------------------

    async def campaign(self) -> None:
        if self._registered is None:
            raise RuntimeError("register_broker() before campaign()")
        await self._try_become_controller()
        self._tasks.append(asyncio.ensure_future(self._campaign_loop()))

    async def _try_become_controller(self) -> None:
        """Create the controller key bound to our lease if it is absent: etcd's CAS makes
        exactly one broker win; the key goes with the winner's session."""
        assert self._registered is not None
        key = self._key("controller")
        self._controller_vacant.clear()
        response = await self._txn(
            [self._absent(key)],
            [self._put(key, _dumps({"broker_id": self._registered.broker_id}), self._lease.id)],
            [self._get(key)],
        )
        if response.succeeded:
            revision = response.header.revision
            self._noted(revision, key)
            self._controller = ControllerInfo(self._registered.broker_id, revision)
            log.info("elected controller (epoch %d)", revision)
            self._publish(ControllerChanged(revision, self._controller))
        else:
            kvs = response.responses[0].response_range.kvs
            if kvs and (self._controller is None or self._controller.epoch < kvs[0].create_revision):
                self._controller = ControllerInfo(int(json.loads(kvs[0].value)["broker_id"]), kvs[0].create_revision)
            elif not kvs:
                self._controller_vacant.set()

    async def _campaign_loop(self) -> None:
        while not self._closed:
            with contextlib.suppress(asyncio.TimeoutError):
                # The watch sets the event when the key goes; the timeout is a safety net.
                await asyncio.wait_for(self._controller_vacant.wait(), timeout=1.0)
            try:
                if self._controller is None or self._controller_vacant.is_set():
                    await self._try_become_controller()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("controller campaign failed: %s", exc)
                await asyncio.sleep(0.2)

    # shutdown ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave: stop renewing and revoke the lease, so the broker's registration (and
        the controller role, if held) go at once rather than after the timeout."""
        self._closed = True
        if self._watch_call is not None:
            self._watch_call.cancel()
        tasks = self._tasks + ([self._watch_task] if self._watch_task else [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._lease is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._lease.revoke(), 2.0)
        for watch in list(self._watches):
            watch.close()
        with contextlib.suppress(Exception):
            await self._client.close()


class _HistoryCompacted(Exception):
    """etcd compacted away the revision a watch would resume from."""


def _prefix_end(prefix: bytes) -> bytes:
    """The end of the key range holding every key that starts with ``prefix``."""
    data = bytearray(prefix)
    for i in range(len(data) - 1, -1, -1):
        if data[i] < 0xFF:
            data[i] += 1
            return bytes(data[: i + 1])
    return b"\0"
