"""The broker: configuration, metadata, logs and partitions, wired together.

Theory of operation: at start the broker loads the cluster image from its metadata
store, opens (and if needed recovers) every local log, and builds a Partition for each
partition it leads or follows. Topic changes go through the controller, which writes
the store first and then applies the new record here -- the same path a watch on etcd
will take in cluster mode, so one node is simply a cluster of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moldau.broker.changes import StateChanges
from moldau.broker.client_metrics import ClientMetrics
from moldau.broker.forwarding import ControllerChannel
from moldau.broker.txn_markers import TxnMarkers
from moldau.broker.txn_verification import TxnVerifier
from moldau.config.broker import BrokerConfig, usable_topic_configs
from moldau.config.group import GROUP_CONFIG_KIND
from moldau.config.group import decode as decode_group_configs
from moldau.controller.controller import Controller
from moldau.coordinator.group import GroupCoordinator
from moldau.coordinator.producer_ids import ProducerIdManager
from moldau.coordinator.share.manager import ShareManager
from moldau.coordinator.share.state import ShareStatePersister
from moldau.coordinator.transaction import TransactionCoordinator
from moldau.metastore.store import BrokerInfo, ClusterImage, MetaStore, PartitionState, TopicRecord
from moldau.ports import LeadershipListener, TxnMarkerListener
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.replication.fetch_session import FetchSessionCache
from moldau.replication.hw_checkpoint import HighWatermarkCheckpoint
from moldau.replication.manager import ReplicaManager
from moldau.replication.partition import Partition
from moldau.security.acl import ACL_KIND, AclBinding
from moldau.security.authorizer import create_authorizer
from moldau.security.quotas import QUOTA_KIND, ClientQuotas
from moldau.server.listeners import Listener
from moldau.stats import BrokerStats
from moldau.storage.cleaner import CleanerConfig, LogCleaner
from moldau.storage.config import LogConfig
from moldau.storage.log_manager import LogManager

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


class Broker:
    def __init__(
        self,
        config: BrokerConfig,
        data_dir: Path,
        store: MetaStore,
        listen: Endpoint,
        advertise: Endpoint | None = None,
    ) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.store = store
        self.listen = listen
        self.advertise = advertise or listen
        #: every listener (set by the runner once bound); empty in unit tests
        self.listeners: list[Listener] = []
        self.node_id = config.int("node.id")
        self.cluster_id = ""
        self.topics: dict[str, TopicRecord] = {}
        self.dynamic_configs: dict[str, dict[str, str]] = {}
        self.topic_names_by_id: dict[uuid.UUID, str] = {}
        self.partitions: dict[tuple[str, int], Partition] = {}
        #: Kafka's log.dirs (JBOD), absolute; the data directory when not set
        self.log_dirs = [Path(d.strip()).absolute() for d in str(config["log.dirs"] or "").split(",") if d.strip()] or [
            self.data_dir.absolute()
        ]
        self.log_manager = LogManager(
            self.log_dirs,
            LogConfig.from_properties(config.effective_topic_config({})),
            max_open_files=config.int("moldau.max.open.files"),
        )
        #: every change that spans an await runs here, safe from cancelled requests
        self.changes = StateChanges()
        self._tasks: list[asyncio.Task[None]] = []
        self.log_cleaner: LogCleaner | None = None
        self.hw_checkpoint = HighWatermarkCheckpoint(self.data_dir)
        #: high watermarks read at start, each taken by its partition when it is created
        self._checkpointed_hw: dict[tuple[str, int], int] = {}
        # The wiring: each component gets this broker as the narrow interface it
        # declares in moldau.ports, and never imports the broker itself.
        self.controller = Controller(self)
        self.producer_ids = ProducerIdManager(store)
        self.group_coordinator = GroupCoordinator(self)
        #: KIP-932 share-partitions of the partitions this broker leads
        self.share_manager = ShareManager(self)
        #: dynamic group configs (IncrementalAlterConfigs on GROUP), by group id
        self.group_configs: dict[str, dict[str, str]] = {}
        self.group_coordinator.share.member_gone_listeners.append(self.share_manager.member_gone)
        #: their durable state, in __share_group_state
        self.share_state = ShareStatePersister(self)
        self.share_manager.load_state = self.share_state.load_for
        self.share_manager.change_listeners.append(self.share_state.changed)
        self.group_coordinator.share.deleted_listeners.append(self._share_group_deleted)
        #: markers to partition leaders: in-process for ours, WriteTxnMarkers for others'
        self.txn_markers = TxnMarkers(self)
        #: KIP-890 verifications of transactional ids other brokers coordinate
        self.txn_verifier = TxnVerifier(self)
        self.transaction_coordinator = TransactionCoordinator(self)
        self.replica_manager = ReplicaManager(self)
        #: ACLs (None unless authorizer.class.name is set: then nothing is checked) and
        #: client quotas, both kept current from the metadata store
        self.authorizer = create_authorizer(
            config["authorizer.class.name"], config["super.users"], config.bool("allow.everyone.if.no.acl.found"))  # type: ignore[arg-type]
        self.quotas = ClientQuotas(config)
        #: KIP-714 client telemetry (the empty subscription) and KIP-227 fetch sessions
        self.client_metrics = ClientMetrics(config.int("telemetry.max.bytes"))
        self.fetch_sessions = FetchSessionCache(config.int("max.incremental.fetch.session.cache.slots"))
        #: where metadata writes go when another broker is the controller
        self.controller_channel = ControllerChannel(self.node_id, store, self._endpoint_of)
        #: told when this broker gains or loses a partition's leadership, in metadata
        #: order: the coordinators whose state lives in internal topics
        self.leadership_listeners: list[LeadershipListener] = [
            self.group_coordinator, self.transaction_coordinator, self.share_state, self.share_manager]
        #: told when a transaction marker is written and replicated on a partition of
        #: __consumer_offsets (moldau.replication.txn_markers): the group coordinator,
        #: which makes the producer's transactional offset commits visible or drops them
        self.txn_marker_listeners: list[TxnMarkerListener] = [self.group_coordinator]
        #: counters for /metrics, updated on the hot paths (moldau.stats)
        self.stats = BrokerStats(config.bool("moldau.metrics.enable"))
        #: the Kafka listeners' open connections (set by the runner), for /metrics
        self.connection_registry: Any = None
        #: start-up progress, for /readyz: the metadata image applied, every log recovered
        self.metadata_loaded = False
        self.storage_recovered = False
        #: how long loading (and recovering) the local logs took, for /metrics
        self.log_recovery_seconds = 0.0

    def _share_group_deleted(self, group_id: str) -> None:
        """DeleteGroups removed a share group: its share-partition state goes too."""
        keys = set(self.share_state.keys_of(group_id))
        keys.update((t, p) for g, t, p in self.share_manager.partitions if g == group_id)
        self.share_manager.drop(lambda k: k[0] == group_id)
        self.share_state.delete(group_id, sorted(keys))

    # lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        image: ClusterImage = await self.store.load()
        self.cluster_id = image.cluster_id
        self.dynamic_configs = {k: dict(v) for k, v in image.broker_configs.items()}
        for kind, entries in image.security.items():
            for key, value in entries.items():
                self.apply_security(kind, key, value)
        self._apply_dynamic_configs(strict=False)  # a bad stored value is logged, never fatal
        self.metadata_loaded = True
        configs = {t.name: self.log_config_for(t) for t in image.topics.values()}
        recovery_started = time.perf_counter()
        await asyncio.to_thread(self.log_manager.load, configs)
        self.log_recovery_seconds = time.perf_counter() - recovery_started
        self._checkpointed_hw = self.hw_checkpoint.read()
        for topic in image.topics.values():
            self.apply_topic(topic)
        self._checkpointed_hw.clear()  # topics not applied now are deleted or not ours
        self.storage_recovered = True
        self._tasks.append(asyncio.ensure_future(self._background_flusher()))
        self._tasks.append(asyncio.ensure_future(self._retention_loop()))
        self._tasks.append(asyncio.ensure_future(self._producer_expiration_loop()))
        self._tasks.append(asyncio.ensure_future(self.hw_checkpoint.run(
            self.high_watermarks, self.config.int("replica.high.watermark.checkpoint.interval.ms") / 1000)))
        self._start_log_cleaner()
        self.replica_manager.start()
        await self.group_coordinator.start()
        await self.transaction_coordinator.start()
        self.share_state.start()

    async def stop(self) -> None:
        await self.controller_channel.close()
        await self.replica_manager.stop()
        await self.changes.drain()
        await self.transaction_coordinator.stop()
        await self.txn_markers.close()
        await self.txn_verifier.close()
        await self.share_state.remote.close()
        await self.group_coordinator.stop()
        self.share_manager.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.log_cleaner is not None:
            await asyncio.to_thread(self.log_cleaner.shutdown)
        try:
            await asyncio.to_thread(self.hw_checkpoint.write, self.high_watermarks())
        except OSError as exc:
            log.error("could not write %s: %s", self.hw_checkpoint.file.path, exc)
        await asyncio.to_thread(self.log_manager.shutdown)
        await self.store.close()

    def _start_log_cleaner(self) -> None:
        """Compaction on worker threads; swaps of cleaned segments come back to this loop."""

        def high_watermark(topic: str, index: int) -> int | None:
            partition = self.partitions.get((topic, index))
            return None if partition is None else partition.high_watermark

        config = CleanerConfig.from_mapping({k: self.config[k] for k in CleanerConfig.KAFKA_NAMES})
        self.log_cleaner = LogCleaner(
            self.log_manager,
            config,
            loop=asyncio.get_running_loop(),
            upper_bound=high_watermark,
        )
        self.log_cleaner.start()

    async def _background_flusher(self) -> None:
        """Honour flush.ms and write the checkpoints now and then, off the event loop."""
        interval = min(1.0, self.config.int("log.flush.offset.checkpoint.interval.ms") / 1000)
        checkpoint_every = self.config.int("log.flush.offset.checkpoint.interval.ms") / 1000
        last_checkpoint = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.log_manager.flush_dirty)
                if time.monotonic() - last_checkpoint >= checkpoint_every:
                    last_checkpoint = time.monotonic()
                    await asyncio.to_thread(self.log_manager.checkpoint)
            except Exception:
                log.exception("background flush failed")

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete whole segments past retention.ms / retention.bytes; returns how many."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        removed = 0
        for partition in list(self.partitions.values()):
            # followers too (as Kafka): each replica applies retention to its own log
            removed += partition.log.delete_retained_segments(now, upper_bound=partition.high_watermark)
        return removed

    async def _producer_expiration_loop(self) -> None:
        """Kafka's producer id expiration, every producer.id.expiration.check.interval.ms."""
        while True:
            await asyncio.sleep(self.config.int("producer.id.expiration.check.interval.ms") / 1000)
            now = int(time.time() * 1000)
            expiration = self.config.int("producer.id.expiration.ms")
            try:
                for partition in list(self.partitions.values()):
                    partition.remove_expired_producers(now, expiration)
                    await asyncio.sleep(0)
            except Exception:
                log.exception("producer id expiration failed")

    async def _retention_loop(self) -> None:
        """Kafka's log retention check, every log.retention.check.interval.ms."""
        while True:
            await asyncio.sleep(self.config.int("log.retention.check.interval.ms") / 1000)
            try:
                if self.enforce_retention():
                    await asyncio.to_thread(self.log_manager.checkpoint)
            except Exception:
                log.exception("retention check failed")

    # dynamic configs ------------------------------------------------------------------

    def _apply_dynamic_configs(self, strict: bool = True) -> None:
        self.config.set_dynamic(
            self.dynamic_configs.get("", {}), self.dynamic_configs.get(str(self.node_id), {}), strict
        )

    async def set_dynamic_configs(self, scope: str, values: dict[str, str]) -> None:
        """Persist a scope's dynamic broker configs and apply them to every log now.

        One atomic step (see :mod:`moldau.broker.changes`): validated, stored, then
        applied, and restored as it was if the store refuses; a requester that hangs up
        meanwhile cannot leave the broker running on configs the store does not hold.
        """
        await self.changes.run(lambda: self._set_dynamic_configs(scope, dict(values)))

    async def _set_dynamic_configs(self, scope: str, values: dict[str, str]) -> None:
        had = scope in self.dynamic_configs
        previous = self.dynamic_configs.get(scope, {})
        self.dynamic_configs[scope] = values
        try:
            self._apply_dynamic_configs()  # raises ValueError on a bad combination
            await self.store.set_broker_configs(scope, values)
        except BaseException:
            if had:
                self.dynamic_configs[scope] = previous
            else:
                self.dynamic_configs.pop(scope, None)
            self._apply_dynamic_configs()
            raise
        for topic in list(self.topics.values()):
            self.apply_topic(topic)

    # topics ---------------------------------------------------------------------------

    def apply_security(self, kind: str, key: str, value: str | None) -> None:
        """An ACL binding or a client quota was set (or removed, ``value`` None), here
        or by another broker (the metadata watch)."""
        if kind == ACL_KIND:
            if self.authorizer is not None:
                binding = AclBinding.from_key(key)
                if value is None:
                    self.authorizer.remove([binding])
                else:
                    self.authorizer.add([binding])
        elif kind == QUOTA_KIND:
            self.quotas.apply(key, value)
        elif kind == GROUP_CONFIG_KIND:  # not security, but the same replicated key/value kind
            if value is None:
                self.group_configs.pop(key, None)
            else:
                self.group_configs[key] = decode_group_configs(value)

    def log_config_for(self, topic: TopicRecord) -> LogConfig:
        return LogConfig.from_properties(self.config.effective_topic_config(usable_topic_configs(topic.name, topic.configs)))

    def apply_topic(self, topic: TopicRecord) -> None:
        """Make local state match a topic record: logs and partitions for our replicas."""
        self.topics[topic.name] = topic
        self.topic_names_by_id[topic.topic_id] = topic.name
        effective = self.config.effective_topic_config(usable_topic_configs(topic.name, topic.configs))
        log_config = LogConfig.from_properties(effective)
        min_isr = int(effective["min.insync.replicas"])
        for index, state in topic.partitions.items():
            if self.node_id not in state.replicas:
                if (topic.name, index) in self.partitions:
                    self._drop_replica(topic.name, index)  # reassigned away
                continue
            key = (topic.name, index)
            partition = self.partitions.get(key)
            if partition is None:
                log_ = self.log_manager.get_log(topic.name, index)
                if log_ is None:
                    log_ = self.log_manager.create_log(topic.name, index, log_config)
                partition = Partition(
                    topic.name,
                    index,
                    topic.topic_id,
                    log_,
                    broker_id=self.node_id,
                    leader=state.leader,
                    leader_epoch=state.leader_epoch,
                    replicas=list(state.replicas),
                    isr=list(state.isr),
                    partition_epoch=state.partition_epoch,
                    session=self.store.session,
                    high_watermark=self._checkpointed_hw.pop(key, None),
                )
                self.partitions[key] = partition
            else:
                partition.log.config = log_config
            partition.min_insync_replicas = min_isr
            partition.compression_type = effective["compression.type"]
            partition.timestamp_before_max_ms = int(effective["message.timestamp.before.max.ms"])
            partition.timestamp_after_max_ms = int(effective["message.timestamp.after.max.ms"])
            partition.adding_replicas = list(state.adding_replicas)
            partition.removing_replicas = list(state.removing_replicas)
            role = partition.apply_state(
                state.leader, state.leader_epoch, state.replicas, state.isr, state.partition_epoch
            )
            if role is not None:
                self.replica_manager.role_changed(partition, role)
                for listener in self.leadership_listeners:
                    listener.leadership_changed(topic.name, index, role == "leader")

    def apply_partition_state(self, topic: str, index: int, state: PartitionState) -> None:
        """One partition's new state (an ISR change this broker wrote, or an election
        the controller wrote), applied as the watch would."""
        record = self.topics.get(topic)
        if record is None or index not in record.partitions:
            return
        record.partitions[index] = state
        self.apply_topic(record)

    def _drop_replica(self, topic: str, index: int) -> None:
        """This broker is no longer a replica (a reassignment removed it): stop the
        replica and delete its log, as Kafka's StopReplica with deletion."""
        partition = self.partitions.pop((topic, index))
        self.replica_manager.partition_removed(topic, index)
        if partition.is_leader:
            for listener in self.leadership_listeners:
                listener.leadership_changed(topic, index, False)
        partition.leader = -1  # waiting produce requests answer NOT_LEADER_OR_FOLLOWER
        partition._wake()
        partition._wake_appenders()
        self.log_manager.delete_partition_log(topic, index)
        log.info("%s-%d: no longer a replica here; log deleted", topic, index)

    def remove_topic(self, name: str) -> None:
        topic = self.topics.pop(name, None)
        if topic is None:
            return
        for listener in self.leadership_listeners:
            listener.topic_removed(name)
        self.topic_names_by_id.pop(topic.topic_id, None)
        for index in topic.partitions:
            partition = self.partitions.pop((name, index), None)
            self.replica_manager.partition_removed(name, index)
            if partition is not None:
                partition._wake()
                partition._wake_appenders()
        self.log_manager.delete_topic_logs(name)

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get((topic, index))

    def high_watermarks(self) -> dict[tuple[str, int], int]:
        """Every local partition's high watermark now (what the checkpoint keeps)."""
        return {key: p.high_watermark for key, p in self.partitions.items()}

    # cluster view ---------------------------------------------------------------------

    def live_brokers(self, listener: str | None = None) -> list[BrokerInfo]:
        """Every live broker (the store's registrations), or just this one when it is not
        in a cluster; with ``listener``, each with its endpoint on that listener."""
        registered = self.store.brokers() or [self.registration()]
        if listener is None:
            return registered
        result = []
        for info in registered:  # as Kafka: a broker without this listener is left out
            endpoint = info.endpoint(listener)
            if endpoint is not None:
                result.append(info if endpoint == (info.host, info.port)
                              else dataclasses.replace(info, host=endpoint[0], port=endpoint[1]))
        return result

    def endpoint_for(self, listener: str | None) -> tuple[str, int]:
        """Where a client of ``listener`` reaches this broker."""
        if listener is not None:
            for li in self.listeners:
                if li.name == listener:
                    return li.advertised_host, li.advertised_port
        return self.advertise.host, self.advertise.port

    def registration(self) -> BrokerInfo:
        """This broker as others see it: the inter-broker endpoint and one per listener."""
        rack = self.config["broker.rack"]
        endpoints = tuple((li.name, li.advertised_host, li.advertised_port) for li in self.listeners)
        return BrokerInfo(self.node_id, self.advertise.host, self.advertise.port, rack or None,  # type: ignore[arg-type]
                          endpoints=endpoints)

    async def create_at_controller(self, topic: TopicRecord) -> TopicRecord | None:
        """Have the elected controller create ``topic`` when this broker is not it; the
        topic as applied here (through the watch), or None if this broker decides.
        Raises KafkaError: the controller's refusal, or LEADER_NOT_AVAILABLE (Kafka's
        answer for a topic being created) when it is not here yet."""
        # bounded: the Metadata or group request that wants the topic is waiting (its
        # client retries on LEADER_NOT_AVAILABLE / COORDINATOR_NOT_AVAILABLE)
        timeout_s = min(self.config.int("request.timeout.ms") / 1000, 5.0)
        if not await self.controller_channel.create_topic(topic, timeout_s):
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while topic.name not in self.topics and loop.time() < deadline:
            await asyncio.sleep(0.02)
        applied = self.topics.get(topic.name)
        if applied is None:
            raise KafkaError(ErrorCode.LEADER_NOT_AVAILABLE, f"Topic '{topic.name}' is being created.")
        return applied

    def _endpoint_of(self, broker_id: int) -> tuple[str, int] | None:
        """A live broker's advertised endpoint (where forwarded requests go)."""
        info = next((b for b in self.store.brokers() if b.broker_id == broker_id), None)
        return None if info is None else (info.host, info.port)

    def controller_id(self) -> int:
        """The elected controller's id; -1 (as Kafka answers) while a cluster has none,
        and while this broker's session has lapsed (fenced): its image of the controller
        key may be stale, and a client sent there would only be told NOT_CONTROLLER."""
        if not self.store.session.valid():
            return -1
        controller = self.store.controller()
        if controller is not None:
            return controller.broker_id
        return -1 if self.store.brokers() else self.node_id
