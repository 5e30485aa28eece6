"""The replica manager: makes this broker's partitions leaders or followers, runs the
followers' fetchers, and writes the ISR changes its leaders decide.

Theory of operation (Kafka's ReplicaManager and ReplicaFetcherThread, see
docs/08-cluster.md):

* Roles come from the partition states in the metadata store, applied in the store's
  order by the broker (``Broker.apply_topic``), which tells :meth:`role_changed`.
* A follower partition is handed to the one :class:`ReplicaFetcher` of its leader
  broker. Before its first fetch in a leader epoch it asks the leader, with
  OffsetForLeaderEpoch, where its own latest epoch ended in the leader's history and
  truncates there, so a tail written by a former leader and never committed cannot
  survive. It then long-polls replica Fetch requests (v13, ``replica_id`` = this broker,
  as Kafka 3.1+ brokers send) from its log end and appends what comes back unchanged.
* A leader learns each follower's log end from those fetches (see ``Partition``),
  which moves the high watermark; on every replica fetch and every
  ``replica.lag.time.max.ms / 2`` it asks the partition whether the ISR should change,
  and writes the new ISR with compare-and-swap on the partition epoch
  (``MetaStore.alter_partition``: Kafka's AlterPartition, only by the leader of the
  current epoch). A lost race is not retried: the winner's state arrives by the watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moldau.metastore.store import PartitionState, StaleEpochError
from moldau.protocol.errors import ErrorCode, ProtocolDecodeError
from moldau.protocol.messages import ALL_APIS
from moldau.records import CorruptRecordError, InvalidRecordError
from moldau.replication.client import BrokerClient, codec_for
from moldau.replication.partition import Partition

if TYPE_CHECKING:
    from moldau.ports import ReplicaHost

log = logging.getLogger(__name__)

FETCH = ALL_APIS[1]
OFFSET_FOR_LEADER_EPOCH = ALL_APIS[23]
#: Fetch v13: topic ids, replica_id as a field; what Kafka 3.1+ brokers use between them
REPLICA_FETCH_VERSION = 13
EPOCH_VERSION = 4
#: Kafka's replica.fetch.response.max.bytes default
REPLICA_FETCH_RESPONSE_MAX_BYTES = 10 * 1024 * 1024
_FetchRequest = codec_for(FETCH).Request
_FetchTopic = _FetchRequest.of("topics")
_FetchPartition = _FetchTopic.of("partitions")
_EpochRequest = codec_for(OFFSET_FOR_LEADER_EPOCH).Request
_EpochTopic = _EpochRequest.of("topics")
_EpochPartition = _EpochTopic.of("partitions")
_NETWORK_ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ProtocolDecodeError, EOFError)

Key = tuple[str, int]


class ReplicaManager:
    """Fetchers for this broker's follower partitions, ISR writes for its leaders."""

    def __init__(self, broker: ReplicaHost[Partition]) -> None:
        self.broker = broker
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._isr_task: asyncio.Task[None] | None = None
        self._closed = False
        #: told the id of a leader broker whose endpoint refused a fetcher's connection
        #: (in a cluster: probe it and end its session if its process is gone)
        self.on_leader_refused: Callable[[int], None] | None = None
        #: the TLS context fetchers connect with when the inter-broker listener is SSL
        self.client_ssl: Any = None
        #: (mechanism, username, password) when the inter-broker listener uses SASL
        self.client_sasl: tuple[str, str, str] | None = None
        #: ISR changes this broker wrote as a leader, for /metrics (Kafka's IsrShrinks/IsrExpands)
        self.isr_shrinks = 0
        self.isr_expands = 0

    @property
    def lag_max_ms(self) -> int:
        return self.broker.config.int("replica.lag.time.max.ms")

    def start(self) -> None:
        self._isr_task = asyncio.ensure_future(self._isr_loop())

    async def stop(self) -> None:
        self._closed = True
        for fetcher in list(self.fetchers.values()):
            await fetcher.stop()
        self.fetchers.clear()
        tasks = [t for t in [self._isr_task, *self._tasks] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # roles ----------------------------------------------------------------------------

    def role_changed(self, partition: Partition, role: str) -> None:
        """A partition became leader or follower (or changed leader epoch)."""
        key = (partition.topic, partition.index)
        if len(partition.replicas) > 1:  # as Kafka logs each leadership change; not on a single node
            if role == "leader":
                log.info("%s-%d: leader in epoch %d from offset %d", *key, partition.leader_epoch,
                         partition.log.log_end_offset)
            else:
                log.info("%s-%d: follower of %d in epoch %d", *key, partition.leader, partition.leader_epoch)
        for leader_id, fetcher in list(self.fetchers.items()):
            if key in fetcher.partitions and (role == "leader" or leader_id != partition.leader):
                fetcher.remove(key)
        if role == "follower" and partition.leader >= 0 and not self._closed:
            fetcher = self.fetchers.get(partition.leader)
            if fetcher is None:
                fetcher = self.fetchers[partition.leader] = ReplicaFetcher(self, partition.leader)
                fetcher.start()
            fetcher.add(partition)

    def partition_removed(self, topic: str, index: int) -> None:
        for fetcher in self.fetchers.values():
            fetcher.remove((topic, index))

    # ISR ------------------------------------------------------------------------------

    async def _isr_loop(self) -> None:
        """Kafka's isr-expiration task: every replica.lag.time.max.ms / 2."""
        while not self._closed:
            await asyncio.sleep(max(0.1, self.lag_max_ms / 2000))
            for partition in list(self.broker.partitions.values()):
                if partition.is_leader and len(partition.replicas) > 1:
                    self.maybe_change_isr(partition)

    def maybe_change_isr(self, partition: Partition) -> None:
        new_isr = partition.isr_change(self.lag_max_ms)
        registered = self.broker.store.brokers()
        if new_isr is None or not registered:
            return  # nothing to change, or a single node (not registered: no followers)
        leaving = {b.broker_id for b in registered if b.shutting_down}
        if leaving:  # a broker in controlled shutdown is not added back (KRaft: ineligible)
            new_isr = [r for r in new_isr if r in partition.isr or r not in leaving]
            if new_isr == partition.isr:
                return
        partition.isr_change_pending = True
        task = asyncio.ensure_future(self._alter_isr(partition, new_isr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _alter_isr(self, partition: Partition, new_isr: list[int]) -> None:
        broker = self.broker
        expected = partition.partition_epoch
        state = PartitionState(
            leader=partition.broker_id,
            leader_epoch=partition.leader_epoch,
            replicas=list(partition.replicas),
            isr=new_isr,
            partition_epoch=expected + 1,
            # a reassignment in progress stays; the controller completes it
            adding_replicas=list(partition.adding_replicas),
            removing_replicas=list(partition.removing_replicas),
        )
        try:
            await broker.changes.run(
                lambda: broker.store.alter_partition(partition.topic, partition.index, state, expected),
                exclusive=False,
            )
        except StaleEpochError:
            partition.isr_change_pending = False  # the newer state comes by the watch
            return
        except Exception as exc:
            partition.isr_change_pending = False
            log.warning("%s-%d: writing ISR %s failed: %s", partition.topic, partition.index, new_isr, exc)
            return
        log.info("%s-%d: ISR %s -> %s", partition.topic, partition.index, partition.isr, new_isr)
        if len(new_isr) < len(partition.isr):
            self.isr_shrinks += 1
        elif len(new_isr) > len(partition.isr):
            self.isr_expands += 1
        current = broker.partitions.get((partition.topic, partition.index))
        if current is partition and partition.partition_epoch == expected:
            broker.apply_partition_state(partition.topic, partition.index, state)


class ReplicaFetcher:
    """Fetches every partition this broker follows from one leader broker."""

    def __init__(self, manager: ReplicaManager, leader_id: int) -> None:
        self.manager = manager
        self.broker = manager.broker
        self.leader_id = leader_id
        self.partitions: dict[Key, Partition] = {}
        self.needs_truncation: set[Key] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: BrokerClient | None = None
        self._stopped = False

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopped = True
        task = self._task
        if task is not None:
            # Python 3.11's wait_for can swallow a cancellation that races with a
            # failed connect (the error is raised instead, and the loop backs off and
            # dials again): cancel until the task is really done.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
        if self._client is not None:
            await self._client.close()

    def add(self, partition: Partition) -> None:
        key = (partition.topic, partition.index)
        self.partitions[key] = partition
        self.needs_truncation.add(key)
        self._changed.set()

    def remove(self, key: Key) -> None:
        self.partitions.pop(key, None)
        self.needs_truncation.discard(key)

    def _endpoint(self) -> tuple[str, int] | None:
        for info in self.broker.store.brokers():
            if info.broker_id == self.leader_id:
                return info.host, info.port
        return None

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopped:
            if not self.partitions:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                if self._client is None:
                    endpoint = self._endpoint()
                    if endpoint is None:
                        await asyncio.sleep(0.1)
                        continue
                    client = BrokerClient(*endpoint, client_id=f"replica-{self.broker.node_id}",
                                          ssl=self.manager.client_ssl, sasl=self.manager.client_sasl)
                    await client.connect()
                    self._client = client
                if self.needs_truncation:
                    await self._truncate(self._client)
                # the others fetch meanwhile: one partition the leader cannot answer for
                # yet (it has not applied its new epoch) must not stall the rest
                failed = await self._fetch(self._client)
                if failed or self.needs_truncation:
                    await asyncio.sleep(0.05)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except _NETWORK_ERRORS as exc:
                log.debug("fetching from broker %d: %s", self.leader_id, exc)
                if isinstance(exc, ConnectionRefusedError) and self.manager.on_leader_refused is not None:
                    self.manager.on_leader_refused(self.leader_id)
                if self._client is not None:
                    await self._client.close()
                    self._client = None
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)
            except Exception:
                log.exception("replica fetcher for broker %d failed; retrying", self.leader_id)
                await asyncio.sleep(0.5)

    async def _truncate(self, client: BrokerClient) -> None:
        """OffsetForLeaderEpoch for the partitions new to this leader epoch, then cut
        each log where the leader's history diverges from ours."""
        asked = {key: self.partitions[key] for key in list(self.needs_truncation) if key in self.partitions}
        for key, partition in list(asked.items()):
            if partition.epochs.latest_epoch < 0:
                # no leader-epoch history (a log from before the cache, or a lost
                # checkpoint): nothing to compare, so Kafka's rule, truncate to our high
                # watermark (checkpointed) and fetch the rest; never to the log start
                del asked[key]
                target = min(partition.high_watermark, partition.log.log_end_offset)
                if target < partition.log.log_end_offset:
                    log.info("%s-%d: no leader epochs; truncating from %d to the high watermark %d",
                             key[0], key[1], partition.log.log_end_offset, target)
                partition.truncate_to(target)
                self.needs_truncation.discard(key)
        if not asked:
            return
        by_topic: dict[str, list[Any]] = {}
        sent: dict[Key, tuple[int, int]] = {}
        for (topic, index), partition in asked.items():
            latest = partition.epochs.latest_epoch
            sent[(topic, index)] = (partition.leader_epoch, latest)
            by_topic.setdefault(topic, []).append(
                _EpochPartition(partition=index, current_leader_epoch=partition.leader_epoch, leader_epoch=latest)
            )
        request = _EpochRequest(
            replica_id=self.broker.node_id,
            topics=[_EpochTopic(topic=t, partitions=ps) for t, ps in by_topic.items()],
        )
        response = await client.request(OFFSET_FOR_LEADER_EPOCH, EPOCH_VERSION, request, timeout=10.0)
        for topic in response.topics:
            for answer in topic.partitions:
                key = (topic.topic, answer.partition)
                partition = self.partitions.get(key)
                if partition is None or key not in self.needs_truncation or key not in sent:
                    continue
                if sent[key][0] != partition.leader_epoch or answer.error_code != 0:
                    continue  # retried: the leader has not caught up with the metadata yet
                leo = partition.log.log_end_offset
                requested = sent[key][1]
                if answer.end_offset < 0:
                    target = min(partition.high_watermark, leo)
                elif answer.leader_epoch == requested:
                    target = min(answer.end_offset, leo)
                else:
                    own_end = partition.end_offset_for_epoch(answer.leader_epoch)[1]
                    target = min(answer.end_offset, leo, own_end if own_end >= 0 else leo)
                if target < leo:
                    log.info("%s-%d: truncating from %d to %d (leader %d epoch %d)",
                             key[0], key[1], leo, target, self.leader_id, partition.leader_epoch)
                partition.truncate_to(target)
                self.needs_truncation.discard(key)

    async def _fetch(self, client: BrokerClient) -> bool:
        """One replica Fetch; True when a partition answered with an error (back off)."""
        config = self.broker.config
        sent: dict[Key, tuple[int, int]] = {}
        by_topic: dict[Any, list[Any]] = {}
        for key, partition in self.partitions.items():
            if key in self.needs_truncation:
                continue
            offset = partition.log.log_end_offset
            sent[key] = (offset, partition.leader_epoch)
            by_topic.setdefault(partition.topic_id, []).append(
                _FetchPartition(
                    partition=key[1],
                    current_leader_epoch=partition.leader_epoch,
                    fetch_offset=offset,
                    last_fetched_epoch=-1,
                    log_start_offset=partition.log.log_start_offset,
                    partition_max_bytes=config.int("replica.fetch.max.bytes"),
                )
            )
        if not sent:
            return False
        # no long poll while a partition waits to truncate: it is asked again soon
        wait_ms = 0 if self.needs_truncation else config.int("replica.fetch.wait.max.ms")
        request = _FetchRequest(
            replica_id=self.broker.node_id,
            max_wait_ms=wait_ms,
            min_bytes=1,
            max_bytes=REPLICA_FETCH_RESPONSE_MAX_BYTES,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=[_FetchTopic(topic_id=tid, partitions=ps) for tid, ps in by_topic.items()],
            forgotten_topics_data=[],
            rack_id="",
        )
        response = await client.request(FETCH, REPLICA_FETCH_VERSION, request, timeout=wait_ms / 1000 + 15)
        if response.error_code:
            return True
        failed = False
        names = self.broker.topic_names_by_id
        for topic in response.responses:
            name = names.get(topic.topic_id)
            for data in topic.partitions:
                key = (name, data.partition_index)
                partition = self.partitions.get(key)  # type: ignore[arg-type]
                if partition is None or key not in sent or key in self.needs_truncation:
                    continue
                offset, epoch = sent[key]
                if partition.leader_epoch != epoch or partition.log.log_end_offset != offset:
                    continue  # the partition changed while the fetch was out
                if data.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    failed = True
                    if offset < data.log_start_offset:
                        partition.truncate_fully_and_start_at(data.log_start_offset)
                    else:
                        partition.truncate_to(max(0, data.high_watermark))
                    continue
                if data.error_code:
                    failed = True
                    continue
                try:
                    partition.append_as_follower(data.records or memoryview(b""), data.high_watermark)
                except (InvalidRecordError, CorruptRecordError) as exc:
                    # not where our log ends: compare histories again before fetching
                    log.warning("%s-%d: cannot append what broker %d sent (%s); truncating again",
                                key[0], key[1], self.leader_id, exc)
                    self.needs_truncation.add(key)
                    failed = True
                    continue
                leader_start = data.log_start_offset
                if partition.log.log_start_offset < leader_start <= partition.log.log_end_offset:
                    # the leader's records deleted below its log start (DeleteRecords,
                    # retention) go here too, as Kafka's followers do
                    partition.log.delete_records_before(leader_start)
        return failed
