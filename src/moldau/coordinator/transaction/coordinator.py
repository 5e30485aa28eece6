"""The transaction coordinator: transactional ids, their producers and transactions,
kept in ``__transaction_state``.

Theory of operation: every transactional id lives in one partition of the compacted
internal topic ``__transaction_state`` (Kafka's hash of the id, as for groups), and
this broker coordinates the ids of the partitions it leads, following their
leadership as the group coordinator does (load on election, unload on resignation,
NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS meanwhile). Each id's state is one
:class:`TxnMetadata` in memory; every change is appended (TransactionLogValue) and
replicated before it is answered.

The state machine is Kafka's for transaction protocol version 1::

    Empty / CompleteCommit / CompleteAbort --AddPartitions/AddOffsets--> Ongoing
    Ongoing --EndTxn(commit)--> PrepareCommit --markers written--> CompleteCommit
    Ongoing --EndTxn(abort), timeout, fencing--> PrepareAbort --markers--> CompleteAbort
    Empty / Complete* --InitProducerId--> Empty (epoch + 1; a new producer id when the
                                                 epoch is exhausted)

EndTxn is answered once PrepareCommit/PrepareAbort is written; the markers then go
to every partition of the transaction, to its leader (in-process here or
WriteTxnMarkers over the network, :class:`moldau.ports.TxnMarkerSender`) and are
retried until every partition has one, and only then is Complete* written. While
markers are pending the id answers CONCURRENT_TRANSACTIONS, which clients retry. A
coordinator that loads an id in Prepare* (a restart, a new leader) sends its markers
again: a transaction decided is always finished. InitProducerId on an id with an
Ongoing transaction (a producer restarted) bumps the epoch, which fences the old
producer at the partitions too, aborts the transaction and answers
CONCURRENT_TRANSACTIONS until the abort is complete.

Requests on one id never interleave a write: a change is appended and applied to
memory in one synchronous step; while it waits for the ISR the id is ``pending`` and
other requests on it get CONCURRENT_TRANSACTIONS (Kafka's pendingState).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from moldau.coordinator.group.hashing import partition_for
from moldau.coordinator.internal_topic import InternalTopicCreator, Unreadable, read_partition
from moldau.coordinator.transaction.records import (
    STATE_BY_NAME,
    TxnLogValue,
    TxnState,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from moldau.ports import TxnMarker
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import RecordInput, build_batch

if TYPE_CHECKING:
    from moldau.metastore.store import TopicRecord
    from moldau.ports import TransactionCoordinatorHost

TXN_TOPIC = "__transaction_state"
#: Kafka bumps to a new producer id when the epoch would pass Short.MAX_VALUE - 1
MAX_EPOCH = 32767 - 1
NO_PRODUCER_ID = -1
NO_EPOCH = -1

TopicPartition = tuple[str, int]

_COMPLETE = (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)
#: marker errors after which a partition needs no marker (Kafka's TransactionMarkerRequestCompletionHandler)
_MARKER_DROPPED = (
    ErrorCode.INVALID_PRODUCER_EPOCH,
    ErrorCode.TRANSACTION_COORDINATOR_FENCED,
    ErrorCode.PRODUCER_FENCED,
)


@dataclass
class TxnMetadata:
    """One transactional id: its producer, and its transaction if one is open."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: set[TopicPartition] = field(default_factory=set)
    start_ms: int = -1
    last_update_ms: int = -1
    #: the epoch before the last bump (not stored, as in Kafka): a retried KIP-360
    #: InitProducerId names it and gets the current epoch back
    last_producer_epoch: int = NO_EPOCH
    previous_producer_id: int = NO_PRODUCER_ID
    #: a change is written and waits for the ISR: other requests are told to retry
    pending: bool = False

    def to_value(self) -> TxnLogValue:
        by_topic: dict[str, list[int]] = {}
        for topic, index in sorted(self.partitions):
            by_topic.setdefault(topic, []).append(index)
        return TxnLogValue(
            self.producer_id, self.producer_epoch, self.timeout_ms, self.state, by_topic,
            self.last_update_ms, self.start_ms, self.previous_producer_id,
        )

    @classmethod
    def from_value(cls, transactional_id: str, value: TxnLogValue) -> TxnMetadata:
        return cls(
            transactional_id, value.producer_id, value.producer_epoch, value.timeout_ms, value.state,
            {(t, p) for t, parts in value.partitions.items() for p in parts},
            value.start_ms, value.last_update_ms, previous_producer_id=value.previous_producer_id,
        )


@dataclass(frozen=True)
class TxnDescription:
    """What DescribeTransactions and ListTransactions report of one id."""

    transactional_id: str
    state: str
    timeout_ms: int
    start_ms: int
    producer_id: int
    producer_epoch: int
    partitions: list[TopicPartition]


class TransactionCoordinator:
    def __init__(self, host: TransactionCoordinatorHost, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.log = logging.getLogger("moldau.coordinator.transaction")
        self._clock = clock
        self.txns: dict[str, TxnMetadata] = {}
        self._loading: set[int] = set()
        #: the leader epoch of each loaded partition: the coordinator epoch of its markers
        self._epochs: dict[int, int] = {}
        self._creator = InternalTopicCreator(
            TXN_TOPIC, lambda: self.host.topics, lambda: self.host.controller, self._plan_topic, self.log
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def num_partitions(self) -> int:
        topic = self.host.topics.get(TXN_TOPIC)
        if topic is not None:
            return len(topic.partitions)
        return self.host.config.int("transaction.state.log.num.partitions")

    def partition_of(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.num_partitions)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._started = True
        if TXN_TOPIC in self.host.topics:
            for index in self.host.topics[TXN_TOPIC].partitions:
                if self._leads(index):
                    self._begin_load(index)
        config = self.host.config
        self._spawn(self._every(
            config.int("transaction.abort.timed.out.transaction.cleanup.interval.ms"), self.abort_timed_out
        ))
        self._spawn(self._every(
            config.int("transaction.remove.expired.transaction.cleanup.interval.ms"), self.expire_transactional_ids
        ))

    async def stop(self) -> None:
        self._started = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _every(self, interval_ms: int, fn: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                fn()
            except Exception:
                self.log.exception("transaction coordinator housekeeping failed")

    async def ensure_topic(self) -> None:
        """Create ``__transaction_state`` on first use, shielded from the request that
        asked (see :mod:`moldau.coordinator.internal_topic`)."""
        await self._creator.ensure()

    def _plan_topic(self) -> TopicRecord:
        config = self.host.config
        creator = self.host.controller
        replication = min(config.int("transaction.state.log.replication.factor"), len(creator.live_brokers()))
        return creator.plan_topic(
            TXN_TOPIC,
            config.int("transaction.state.log.num.partitions"),
            replication,
            {
                "cleanup.policy": "compact",
                "compression.type": "uncompressed",
                "unclean.leader.election.enable": "false",
                "segment.bytes": str(config.int("transaction.state.log.segment.bytes")),
                # as Kafka: set as is; a partition bounds it by its replica count when
                # it checks acks=all (Partition.effective_min_isr), so a single broker
                # with the default of 2 serves transactions, and a topic that gets more
                # replicas later (a reassignment) gets the configured bound back
                "min.insync.replicas": str(config.int("transaction.state.log.min.isr")),
            },
        )

    def topic_removed(self, name: str) -> None:
        if name != TXN_TOPIC:
            return
        self.txns.clear()
        self._loading.clear()
        self._epochs.clear()

    def leadership_changed(self, topic: str, index: int, is_leader: bool) -> None:
        if topic != TXN_TOPIC or not self._started:
            return
        self._unload(index)
        if is_leader:
            self._begin_load(index)

    def _unload(self, index: int) -> None:
        for txn_id in [t for t in self.txns if self.partition_of(t) == index]:
            del self.txns[txn_id]
        self._epochs.pop(index, None)
        self._loading.discard(index)

    def _leads(self, index: int) -> bool:
        partition = self.host.partition(TXN_TOPIC, index)
        return partition is not None and partition.is_leader

    def check_coordinator(self, transactional_id: str) -> None:
        """Raise the error a client must see when we cannot serve this id now."""
        if TXN_TOPIC not in self.host.topics:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        index = self.partition_of(transactional_id)
        if not self._leads(index):
            raise KafkaError(ErrorCode.NOT_COORDINATOR)
        if index in self._loading or index not in self._epochs:
            raise KafkaError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)

    async def ready(self, transactional_id: str) -> None:
        await self.ensure_topic()
        self.check_coordinator(transactional_id)

    # -- loading --------------------------------------------------------------------

    def _begin_load(self, index: int) -> None:
        partition = self.host.partition(TXN_TOPIC, index)
        if partition is None:
            return
        if partition.log.log_end_offset <= partition.log.log_start_offset:
            self._epochs[index] = partition.leader_epoch  # nothing to read: serve at once
            return
        self._loading.add(index)
        self._spawn(self._load(index, partition.leader_epoch))

    async def _load(self, index: int, epoch: int) -> None:
        partition = self.host.partition(TXN_TOPIC, index)
        if partition is None:
            self._loading.discard(index)
            return
        skipped = Unreadable()
        loaded: dict[str, TxnMetadata | None] = {}
        try:
            records = await asyncio.to_thread(read_partition, partition.log, partition.log.log_end_offset, skipped)
            for key, value, _, _ in records:
                if key is None:
                    continue
                try:
                    txn_id = decode_key(key)
                    loaded[txn_id] = None if value is None else TxnMetadata.from_value(txn_id, decode_value(value))
                except Exception as exc:
                    skipped.record(repr(exc))
        except Exception:
            self.log.exception("could not load %s-%d", TXN_TOPIC, index)
        if index not in self._loading or not partition.is_leader or partition.leader_epoch != epoch:
            return  # unloaded (or re-elected) meanwhile: a newer load owns it
        for txn_id, meta in loaded.items():
            if meta is not None and self.partition_of(txn_id) == index:
                self.txns[txn_id] = meta
        self._epochs[index] = epoch
        self._loading.discard(index)
        if skipped:
            self.log.warning("%s-%d: skipped what could not be read: %s", TXN_TOPIC, index, skipped)
        for meta in [m for m in self.txns.values() if self.partition_of(m.transactional_id) == index]:
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                self._spawn(self._complete(meta))
        count = sum(v is not None for v in loaded.values())
        (self.log.info if count else self.log.debug)("loaded %s-%d: %d transactional id(s)", TXN_TOPIC, index, count)

    # -- writing --------------------------------------------------------------------

    def _append(self, transactional_id: str, value: TxnLogValue | None) -> None:
        index = self.partition_of(transactional_id)
        partition = self.host.partition(TXN_TOPIC, index)
        if partition is None or not partition.is_leader or self._epochs.get(index) != partition.leader_epoch:
            raise KafkaError(ErrorCode.NOT_COORDINATOR)
        now = self.now_ms()
        batch = build_batch([RecordInput(encode_key(transactional_id), None if value is None else encode_value(value), (), now)])
        try:
            partition.append_as_leader(memoryview(bytearray(batch)), -1, now)
        except KafkaError as exc:
            self.log.warning("could not write %s to %s: %s", transactional_id, TXN_TOPIC, exc)
            if exc.code is ErrorCode.NOT_LEADER_OR_FOLLOWER:
                raise KafkaError(ErrorCode.NOT_COORDINATOR) from None
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE) from None

    async def _replicated(self, meta: TxnMetadata) -> ErrorCode:
        """Wait until the ISR has what was written for ``meta`` (Kafka answers then);
        NOT_COORDINATOR if the leadership moved, COORDINATOR_NOT_AVAILABLE on timeout."""
        partition = self.host.partition(TXN_TOPIC, self.partition_of(meta.transactional_id))
        if partition is None:
            return ErrorCode.NOT_COORDINATOR
        meta.pending = True
        try:
            code = await partition.wait_high_watermark(partition.log.log_end_offset, self._request_timeout_s())
        finally:
            meta.pending = False
        if code is ErrorCode.NOT_LEADER_OR_FOLLOWER:
            return ErrorCode.NOT_COORDINATOR
        if code is ErrorCode.REQUEST_TIMED_OUT:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return code

    def _request_timeout_s(self) -> float:
        return self.host.config.int("request.timeout.ms") / 1000

    def _store(self, meta: TxnMetadata, **changes: object) -> None:
        """Write ``meta`` with ``changes`` applied, then apply them to memory (one step)."""
        updated = TxnMetadata(**{**meta.__dict__, **changes})  # type: ignore[arg-type]
        updated.last_update_ms = self.now_ms()
        self._append(meta.transactional_id, updated.to_value())
        for name in ("producer_id", "producer_epoch", "timeout_ms", "state", "partitions", "start_ms",
                     "last_update_ms", "last_producer_epoch", "previous_producer_id"):
            setattr(meta, name, getattr(updated, name))
        self.txns[meta.transactional_id] = meta

    # -- InitProducerId ---------------------------------------------------------------

    async def init_producer_id(
        self, transactional_id: str, timeout_ms: int, expected_pid: int = NO_PRODUCER_ID, expected_epoch: int = NO_EPOCH
    ) -> tuple[ErrorCode, int, int]:
        """(error, producer id, epoch) for a transactional producer that (re)starts or,
        with its current id and epoch (KIP-360), recovers from an abortable error."""
        if not transactional_id:
            return ErrorCode.INVALID_REQUEST, NO_PRODUCER_ID, NO_EPOCH
        if timeout_ms <= 0 or timeout_ms > self.host.config.int("transaction.max.timeout.ms"):
            return ErrorCode.INVALID_TRANSACTION_TIMEOUT, NO_PRODUCER_ID, NO_EPOCH
        try:
            await self.ready(transactional_id)
            meta = self.txns.get(transactional_id)
            if meta is None:
                producer_id = await self.host.producer_ids.generate()
                self.check_coordinator(transactional_id)  # may have moved during the await
                meta = self.txns.get(transactional_id)
                if meta is None:
                    meta = TxnMetadata(transactional_id, producer_id, NO_EPOCH, timeout_ms)
                    self._store(meta, producer_epoch=0, state=TxnState.EMPTY, partitions=set(), start_ms=-1)
                    return await self._answer_init(meta)
            if meta.pending:
                return ErrorCode.CONCURRENT_TRANSACTIONS, NO_PRODUCER_ID, NO_EPOCH
            named = expected_pid != NO_PRODUCER_ID
            # KIP-360, Kafka's order: first the producer id the request names (the
            # current one, or the previous one after an exhausted epoch), then the state,
            # then the epoch when it is bumped
            if named and not (
                meta.producer_epoch == NO_EPOCH
                or expected_pid == meta.producer_id
                or (expected_pid == meta.previous_producer_id and expected_epoch >= MAX_EPOCH)
            ):
                return ErrorCode.PRODUCER_FENCED, NO_PRODUCER_ID, NO_EPOCH
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT,
                              TxnState.PREPARE_EPOCH_FENCE, TxnState.DEAD):
                return ErrorCode.CONCURRENT_TRANSACTIONS, NO_PRODUCER_ID, NO_EPOCH
            if meta.state is TxnState.ONGOING:
                # A new incarnation while the old one has a transaction open: fence the
                # old producer (a new epoch, carried by the abort markers) and abort it.
                self._fence_and_abort(meta)
                return ErrorCode.CONCURRENT_TRANSACTIONS, NO_PRODUCER_ID, NO_EPOCH
            # the epoch before the bump is remembered only for a producer that named its
            # own (a retry of that bump gets the current epoch back); a new incarnation
            # forgets it, so that the old one cannot come back that way
            last_epoch = NO_EPOCH
            if named:
                if expected_epoch == meta.producer_epoch and expected_pid == meta.producer_id:
                    last_epoch = meta.producer_epoch
                elif expected_epoch == meta.last_producer_epoch != NO_EPOCH:
                    return ErrorCode.NONE, meta.producer_id, meta.producer_epoch
                else:
                    return ErrorCode.PRODUCER_FENCED, NO_PRODUCER_ID, NO_EPOCH
            if meta.producer_epoch >= MAX_EPOCH:
                producer_id = await self.host.producer_ids.generate()
                self.check_coordinator(transactional_id)
                if self.txns.get(transactional_id) is not meta or meta.pending:
                    return ErrorCode.CONCURRENT_TRANSACTIONS, NO_PRODUCER_ID, NO_EPOCH
                self._store(
                    meta, producer_id=producer_id, producer_epoch=0, previous_producer_id=meta.producer_id,
                    last_producer_epoch=last_epoch, timeout_ms=timeout_ms, state=TxnState.EMPTY,
                    partitions=set(), start_ms=-1,
                )
            else:
                self._store(
                    meta, producer_epoch=meta.producer_epoch + 1, last_producer_epoch=last_epoch,
                    timeout_ms=timeout_ms, state=TxnState.EMPTY, partitions=set(), start_ms=-1,
                )
            return await self._answer_init(meta)
        except KafkaError as exc:
            return exc.code, NO_PRODUCER_ID, NO_EPOCH

    async def _answer_init(self, meta: TxnMetadata) -> tuple[ErrorCode, int, int]:
        code = await self._replicated(meta)
        if code is not ErrorCode.NONE:
            return code, NO_PRODUCER_ID, NO_EPOCH
        return ErrorCode.NONE, meta.producer_id, meta.producer_epoch

    def _fence_and_abort(self, meta: TxnMetadata) -> None:
        """Bump the epoch of an Ongoing transaction and abort it with the new epoch
        (Kafka's prepareFenceProducerEpoch, then the abort): the old producer's next
        request, at the coordinator or at a partition, is fenced."""
        epoch = meta.producer_epoch if meta.producer_epoch >= MAX_EPOCH else meta.producer_epoch + 1
        self._store(meta, producer_epoch=epoch, last_producer_epoch=NO_EPOCH, state=TxnState.PREPARE_ABORT)
        self._spawn(self._finish(meta))

    async def _finish(self, meta: TxnMetadata) -> None:
        """Once the decision (Prepare*) is replicated, write the markers. A task of the
        coordinator's own, so that a client hanging up on EndTxn, or the ISR taking
        longer than the request's timeout, never leaves a decided transaction unfinished
        while this broker leads its partition."""
        index = self.partition_of(meta.transactional_id)
        partition = self.host.partition(TXN_TOPIC, index)
        if partition is None:
            return
        end = partition.log.log_end_offset
        while True:
            code = await partition.wait_high_watermark(end, self._request_timeout_s())
            if code is ErrorCode.NONE:
                break
            if code is not ErrorCode.REQUEST_TIMED_OUT or self.txns.get(meta.transactional_id) is not meta:
                return  # the leadership moved: the next coordinator finishes it
        await self._complete(meta)

    # -- AddPartitionsToTxn / AddOffsetsToTxn ----------------------------------------

    def _check_producer(self, transactional_id: str, producer_id: int, epoch: int) -> TxnMetadata:
        self.check_coordinator(transactional_id)
        meta = self.txns.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            raise KafkaError(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if epoch != meta.producer_epoch:
            raise KafkaError(ErrorCode.PRODUCER_FENCED)
        if meta.pending:
            raise KafkaError(ErrorCode.CONCURRENT_TRANSACTIONS)
        return meta

    async def add_partitions(
        self, transactional_id: str, producer_id: int, epoch: int, partitions: Iterable[TopicPartition]
    ) -> ErrorCode:
        """Add partitions to the producer's transaction (starting it if none is open)."""
        try:
            await self.ensure_topic()
            meta = self._check_producer(transactional_id, producer_id, epoch)
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                return ErrorCode.CONCURRENT_TRANSACTIONS
            if meta.state in (TxnState.DEAD, TxnState.PREPARE_EPOCH_FENCE):
                return ErrorCode.INVALID_TXN_STATE
            wanted = set(partitions)
            if meta.state is TxnState.ONGOING and wanted <= meta.partitions:
                return ErrorCode.NONE
            now = self.now_ms()
            start = meta.start_ms if meta.state is TxnState.ONGOING else now
            self._store(meta, state=TxnState.ONGOING, partitions=meta.partitions | wanted, start_ms=start)
            return await self._replicated(meta)
        except KafkaError as exc:
            return exc.code

    def verify_partitions(
        self, transactional_id: str, producer_id: int, epoch: int, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, ErrorCode]:
        """KIP-890's verifyOnly AddPartitionsToTxn (sent by partition leaders): is each
        partition in the producer's ongoing transaction?"""
        wanted = list(partitions)
        try:
            meta = self._check_producer(transactional_id, producer_id, epoch)
        except KafkaError as exc:
            return {tp: exc.code for tp in wanted}
        if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            return {tp: ErrorCode.CONCURRENT_TRANSACTIONS for tp in wanted}
        ongoing = meta.state is TxnState.ONGOING
        return {tp: ErrorCode.NONE if ongoing and tp in meta.partitions else ErrorCode.INVALID_TXN_STATE for tp in wanted}

    # -- EndTxn -----------------------------------------------------------------------

    async def end_txn(self, transactional_id: str, producer_id: int, epoch: int, committed: bool) -> ErrorCode:
        try:
            meta = self._check_producer(transactional_id, producer_id, epoch)
        except KafkaError as exc:
            return exc.code
        state = meta.state
        if state is TxnState.ONGOING:
            try:
                self._store(meta, state=TxnState.PREPARE_COMMIT if committed else TxnState.PREPARE_ABORT)
            except KafkaError as exc:
                return exc.code
            self._spawn(self._finish(meta))
            return await self._replicated(meta)
        if state is TxnState.COMPLETE_COMMIT:
            return ErrorCode.NONE if committed else ErrorCode.INVALID_TXN_STATE
        if state is TxnState.COMPLETE_ABORT:
            return ErrorCode.NONE if not committed else ErrorCode.INVALID_TXN_STATE
        if state is TxnState.PREPARE_COMMIT:
            return ErrorCode.CONCURRENT_TRANSACTIONS if committed else ErrorCode.INVALID_TXN_STATE
        if state is TxnState.PREPARE_ABORT:
            return ErrorCode.CONCURRENT_TRANSACTIONS if not committed else ErrorCode.INVALID_TXN_STATE
        return ErrorCode.INVALID_TXN_STATE  # Empty, Dead, PrepareEpochFence

    # -- markers ----------------------------------------------------------------------

    async def _complete(self, meta: TxnMetadata) -> None:
        """Write the transaction's markers on all its partitions, retrying until each
        has one, then write Complete*. Stops if the id is unloaded (the next leader of
        its ``__transaction_state`` partition finishes the job)."""
        committed = meta.state is TxnState.PREPARE_COMMIT
        index = self.partition_of(meta.transactional_id)
        remaining = set(meta.partitions)
        delay = 0.02
        while remaining:
            if self.txns.get(meta.transactional_id) is not meta or index not in self._epochs:
                return
            by_leader: dict[int, list[TopicPartition]] = {}
            for tp in list(remaining):
                topic = self.host.topics.get(tp[0])
                if topic is None or tp[1] not in topic.partitions:
                    remaining.discard(tp)  # deleted: nothing to mark
                    continue
                leader = topic.partitions[tp[1]].leader
                if leader >= 0:
                    by_leader.setdefault(leader, []).append(tp)
            sends = [
                self.host.txn_markers.send_txn_markers(
                    leader,
                    TxnMarker(meta.producer_id, meta.producer_epoch, committed, self._epochs[index], tuple(sorted(tps))),
                )
                for leader, tps in by_leader.items()
            ]
            for result in await asyncio.gather(*sends, return_exceptions=True):
                if isinstance(result, BaseException):
                    self.log.warning("%s: marker write failed: %r", meta.transactional_id, result)
                    continue
                for tp, code in result.items():
                    if code is ErrorCode.NONE or code in _MARKER_DROPPED:
                        remaining.discard(tp)
            if remaining:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if self.txns.get(meta.transactional_id) is not meta or meta.state not in (
            TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT
        ):
            return
        try:
            self._store(
                meta, state=TxnState.COMPLETE_COMMIT if committed else TxnState.COMPLETE_ABORT, partitions=set()
            )
        except KafkaError as exc:
            self.log.warning("%s: could not write the end of its transaction: %s", meta.transactional_id, exc)
            return
        await self._replicated(meta)

    # -- timeouts and expiration ------------------------------------------------------

    def abort_timed_out(self) -> int:
        """Abort Ongoing transactions older than their timeout, fencing their producer
        (Kafka's abortTimedOutTransactions); returns how many."""
        now = self.now_ms()
        count = 0
        for meta in list(self.txns.values()):
            if meta.state is not TxnState.ONGOING or meta.pending or meta.start_ms + meta.timeout_ms > now:
                continue
            try:
                self.check_coordinator(meta.transactional_id)
                self.log.info(
                    "aborting transaction of %s (producer %d epoch %d): older than its timeout of %d ms",
                    meta.transactional_id, meta.producer_id, meta.producer_epoch, meta.timeout_ms,
                )
                self._fence_and_abort(meta)
                count += 1
            except KafkaError:
                continue
        return count

    def expire_transactional_ids(self) -> int:
        """Forget ids idle for ``transactional.id.expiration.ms`` with no transaction
        open (a tombstone in the log); returns how many."""
        now = self.now_ms()
        expiration = self.host.config.int("transactional.id.expiration.ms")
        count = 0
        for meta in list(self.txns.values()):
            if meta.state not in _COMPLETE or meta.pending or now - meta.last_update_ms < expiration:
                continue
            try:
                self.check_coordinator(meta.transactional_id)
                self._append(meta.transactional_id, None)
            except KafkaError:
                continue
            del self.txns[meta.transactional_id]
            count += 1
        if count:
            self.log.info("expired %d transactional id(s)", count)
        return count

    # -- describe and list ------------------------------------------------------------

    def describe(self, transactional_id: str) -> tuple[ErrorCode, TxnDescription | None]:
        try:
            self.check_coordinator(transactional_id)
        except KafkaError as exc:
            return exc.code, None
        meta = self.txns.get(transactional_id)
        if meta is None:
            return ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, None
        return ErrorCode.NONE, self._description(meta)

    @staticmethod
    def _description(meta: TxnMetadata) -> TxnDescription:
        return TxnDescription(
            meta.transactional_id, meta.state.kafka_name, meta.timeout_ms, meta.start_ms,
            meta.producer_id, meta.producer_epoch, sorted(meta.partitions),
        )

    def list_transactions(
        self,
        states: list[str],
        producer_ids: list[int],
        duration_ms: int = -1,
        pattern: str | None = None,
    ) -> tuple[ErrorCode, list[str], list[TxnDescription]]:
        """(error, unknown state filters, transactions) of the ids this broker
        coordinates, filtered as ListTransactions asks (an empty filter matches all)."""
        unknown = [s for s in states if s not in STATE_BY_NAME]
        wanted = {STATE_BY_NAME[s] for s in states if s in STATE_BY_NAME}
        if states and not wanted:
            return ErrorCode.NONE, unknown, []
        matcher = None
        if pattern:
            try:
                matcher = re.compile(pattern)
            except re.error:
                return ErrorCode.INVALID_REQUEST, unknown, []
        if self._loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, unknown, []
        now = self.now_ms()
        out = []
        for meta in self.txns.values():
            if wanted and meta.state not in wanted:
                continue
            if producer_ids and meta.producer_id not in producer_ids:
                continue
            if duration_ms >= 0 and (meta.start_ms < 0 or now - meta.start_ms < duration_ms):
                continue
            if matcher is not None and not matcher.fullmatch(meta.transactional_id):
                continue
            if not self._leads(self.partition_of(meta.transactional_id)):
                continue
            out.append(self._description(meta))
        return ErrorCode.NONE, unknown, out
