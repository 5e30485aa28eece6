"""The group coordinator: groups and committed offsets, kept in ``__consumer_offsets``.

Theory of operation: every group lives in one partition of the internal compacted
topic ``__consumer_offsets`` (Kafka's hash of the group id, see :mod:`.hashing`), and
this broker coordinates the groups of the partitions it leads. State is held in
memory and every change is appended to that partition before it is acknowledged, in
Kafka's record formats (:mod:`.records`): committed offsets, classic group metadata
at each new generation, and tombstones for deletions. At start the partitions are
replayed off the event loop; until a partition is loaded its groups answer
COORDINATOR_LOAD_IN_PROGRESS, which clients retry.

The topic is created on first use (FindCoordinator or any group request), as in
Kafka, so that brokers which never see a group do not carry 50 empty partitions.

Offsets belong to the group id, not to the protocol: a group that only ever had
standalone commits is a classic group in state Empty, and an empty group of either
kind can be taken over by the other protocol keeping its offsets. Offsets of empty
groups expire ``offsets.retention.minutes`` after the group became empty (or after
the commit, for groups that never had members), checked every
``offsets.retention.check.interval.ms``; a group with neither members nor offsets
left is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moldau.config.group import group_config_value
from moldau.coordinator.group.classic import ClassicGroup, ClassicGroupManager, GroupState
from moldau.coordinator.group.hashing import partition_for
from moldau.coordinator.group.records import (
    ConsumerKey,
    GroupKey,
    OffsetKey,
    OffsetValue,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
)
from moldau.coordinator.internal_topic import (
    NOT_CONTROL,
    InternalTopicCreator,
    LoggedRecord,
    Unreadable,
    read_partition,
)
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import RecordInput, build_batch

if TYPE_CHECKING:
    from moldau.coordinator.group.consumer import ConsumerGroup
    from moldau.metastore.store import TopicRecord
    from moldau.ports import GroupCoordinatorHost

OFFSETS_TOPIC = "__consumer_offsets"

TopicPartition = tuple[str, int]


@dataclass
class OffsetCommit:
    """One partition's offset in an OffsetCommit request."""

    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


class GroupCoordinator:
    def __init__(self, broker: GroupCoordinatorHost, clock: Callable[[], float] = time.time) -> None:
        from moldau.coordinator.group.consumer import ConsumerGroupManager
        from moldau.coordinator.group.migration import GroupMigration
        from moldau.coordinator.share.group import ShareGroupManager

        self.broker = broker
        self.log = logging.getLogger("moldau.coordinator.group")
        self._clock = clock
        self.groups: dict[str, ClassicGroup | ConsumerGroup] = {}
        self.offsets: dict[str, dict[TopicPartition, OffsetValue]] = {}
        #: TxnOffsetCommit's offsets by producer id and group, written to the log but
        #: visible only once the producer's commit marker lands (complete_transaction)
        self.pending_txn_offsets: dict[int, dict[str, dict[TopicPartition, OffsetValue]]] = {}
        self.classic = ClassicGroupManager(self)
        self.consumer = ConsumerGroupManager(self)
        self.migration = GroupMigration(self)
        self.share = ShareGroupManager(self)
        self._loading: set[int] = set()
        self._creator = InternalTopicCreator(
            OFFSETS_TOPIC, lambda: self.broker.topics, lambda: self.broker.controller, self._plan_topic, self.log
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def num_partitions(self) -> int:
        topic = self.broker.topics.get(OFFSETS_TOPIC)
        if topic is not None:
            return len(topic.partitions)
        return self.broker.config.int("offsets.topic.num.partitions")

    def group_config(self, group_id: str, key: str) -> Any:
        """A dynamic group config (Kafka's GroupConfig): the group's override set with
        IncrementalAlterConfigs, else the broker default it stands for."""
        overrides = getattr(self.broker, "group_configs", {}).get(group_id, {})
        return group_config_value(self.broker.config, overrides, key)

    def partition_of(self, group_id: str) -> int:
        return partition_for(group_id, self.num_partitions)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._started = True
        if OFFSETS_TOPIC in self.broker.topics:
            self._begin_loading()
        self._tasks.append(asyncio.ensure_future(self._expiration_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for group in self.groups.values():
            if isinstance(group, ClassicGroup):
                self.classic.shutdown(group)
            else:
                self.consumer.shutdown(group)

    async def ensure_topic(self) -> None:
        """Create ``__consumer_offsets`` on first use, with Kafka's settings for it
        (see :mod:`moldau.coordinator.internal_topic`)."""
        await self._creator.ensure()

    def _plan_topic(self) -> TopicRecord:
        config = self.broker.config
        return self.broker.controller.plan_topic(
            OFFSETS_TOPIC,
            config.int("offsets.topic.num.partitions"),
            min(config.int("offsets.topic.replication.factor"), len(self.broker.controller.live_brokers())),
            {
                "cleanup.policy": "compact",
                "compression.type": "producer",
                "segment.bytes": str(config.int("offsets.topic.segment.bytes")),
            },
        )

    def topic_removed(self, name: str) -> None:
        """``__consumer_offsets`` was deleted (Kafka lets an admin do it): forget its groups.

        As when a Kafka coordinator resigns its partitions, members are sent away and
        the offsets go with the topic; the next group request creates it afresh.
        """
        if name != OFFSETS_TOPIC:
            return
        for group in self.groups.values():
            if isinstance(group, ClassicGroup):
                self.classic.shutdown(group)
            else:
                self.consumer.shutdown(group)
        self.groups.clear()
        self.offsets.clear()
        self.pending_txn_offsets.clear()
        self._loading.clear()

    def leadership_changed(self, topic: str, index: int, is_leader: bool) -> None:
        """Follow the leadership of ``__consumer_offsets`` partitions (Kafka's
        onElection/onResignation): a partition this broker now leads is loaded, one it
        no longer leads is unloaded (its members are told NOT_COORDINATOR)."""
        if topic != OFFSETS_TOPIC or not self._started:
            return
        self._unload(index)
        partition = self.broker.partition(OFFSETS_TOPIC, index)
        if is_leader and partition is not None and partition.log.log_end_offset > partition.log.log_start_offset:
            self._loading.add(index)
            self._tasks.append(asyncio.ensure_future(self._load_all([index])))

    def _unload(self, index: int) -> None:
        for group_id in [g for g in self.groups if self.partition_of(g) == index]:
            group = self.groups.pop(group_id)
            if isinstance(group, ClassicGroup):
                self.classic.shutdown(group)
            else:
                self.consumer.shutdown(group)
        for group_id in [g for g in self.offsets if self.partition_of(g) == index]:
            del self.offsets[group_id]
        for producer_id, groups in list(self.pending_txn_offsets.items()):
            for group_id in [g for g in groups if self.partition_of(g) == index]:
                del groups[group_id]
            if not groups:
                del self.pending_txn_offsets[producer_id]

    def check_coordinator(self, group_id: str) -> None:
        """Raise the error a client must see when we cannot serve ``group_id`` now."""
        if OFFSETS_TOPIC not in self.broker.topics:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        index = self.partition_of(group_id)
        partition = self.broker.partition(OFFSETS_TOPIC, index)
        if partition is None or not partition.is_leader:
            raise KafkaError(ErrorCode.NOT_COORDINATOR)
        if index in self._loading:
            raise KafkaError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)

    def _serves(self, group_id: str) -> bool:
        try:
            self.check_coordinator(group_id)
        except KafkaError:
            return False
        return True

    async def ready(self, group_id: str) -> None:
        await self.ensure_topic()
        self.check_coordinator(group_id)

    # -- loading --------------------------------------------------------------------

    def _begin_loading(self) -> None:
        indexes = [i for i in self.broker.topics[OFFSETS_TOPIC].partitions if self._leads(i)]
        self._loading.update(indexes)
        self._tasks.append(asyncio.ensure_future(self._load_all(sorted(indexes))))

    def _leads(self, index: int) -> bool:
        partition = self.broker.partition(OFFSETS_TOPIC, index)
        return partition is not None and partition.is_leader

    async def _load_all(self, indexes: list[int]) -> None:
        started = time.perf_counter()
        count = 0
        for index in indexes:
            partition = self.broker.partition(OFFSETS_TOPIC, index)
            if partition is None:
                self._loading.discard(index)
                continue
            skipped = Unreadable()
            try:
                # up to the log end, as Kafka's coordinator loads: a new leader's high
                # watermark may lag until its followers fetch
                records = await asyncio.to_thread(
                    read_partition, partition.log, partition.log.log_end_offset, skipped
                )
                count += len(records)
                self._replay(records, skipped, index)
            except Exception:
                self.log.exception("could not load %s-%d", OFFSETS_TOPIC, index)
            finally:
                self._loading.discard(index)
            if skipped:
                self.log.warning("%s-%d: skipped what could not be read: %s", OFFSETS_TOPIC, index, skipped)
        for group in self.groups.values():
            if isinstance(group, ClassicGroup):
                self.classic.arm_restored(group)
            else:
                self.consumer.arm_restored(group)
        self.log.info(
            "loaded %d group(s) from %d record(s) of %s in %.0f ms",
            len(self.groups), count, OFFSETS_TOPIC, (time.perf_counter() - started) * 1000,
        )

    def _replay(
        self, records: list[LoggedRecord], skipped: Unreadable | None = None, index: int | None = None
    ) -> None:
        """Rebuild groups and offsets from records; one that cannot be read is skipped
        (counted in ``skipped``), never the records after it. Transactional offsets
        stay pending until their producer's marker (in partition ``index``) says."""
        skipped = Unreadable() if skipped is None else skipped
        for key_bytes, value_bytes, producer_id, control in records:
            try:
                if control != NOT_CONTROL:
                    if index is not None:
                        self.complete_transaction(index, producer_id, control == 1)
                    continue
                assert key_bytes is not None
                key = decode_key(key_bytes)
                if producer_id >= 0 and isinstance(key, OffsetKey):
                    if value_bytes is not None:
                        pending = self.pending_txn_offsets.setdefault(producer_id, {}).setdefault(key.group, {})
                        pending[(key.topic, key.partition)] = decode_offset_value(value_bytes)
                    continue
                if isinstance(key, OffsetKey):
                    if value_bytes is None:
                        offsets = self.offsets.get(key.group)
                        if offsets is not None:
                            offsets.pop((key.topic, key.partition), None)
                    else:
                        value = decode_offset_value(value_bytes)
                        self.offsets.setdefault(key.group, {})[(key.topic, key.partition)] = value
                        if key.group not in self.groups:
                            self.groups[key.group] = ClassicGroup(key.group, value.commit_timestamp)
                elif isinstance(key, GroupKey):
                    if value_bytes is None:
                        if isinstance(self.groups.get(key.group), ClassicGroup):
                            del self.groups[key.group]
                        self.offsets.pop(key.group, None)
                    else:
                        self.groups[key.group] = self.classic.restore(key.group, decode_group_value(value_bytes))
                elif isinstance(key, ConsumerKey):
                    self.consumer.replay(key, value_bytes)
            except Exception as exc:
                skipped.record(repr(exc))

    # -- writing --------------------------------------------------------------------

    def _append(self, group_id: str, records: list[tuple[bytes, bytes | None]]) -> None:
        if not records:
            return
        partition = self.broker.partition(OFFSETS_TOPIC, self.partition_of(group_id))
        if partition is None:
            raise KafkaError(ErrorCode.NOT_COORDINATOR)
        now = self.now_ms()
        batch = build_batch([RecordInput(key, value, (), now) for key, value in records])
        try:
            partition.append_as_leader(memoryview(bytearray(batch)), -1, now)
        except KafkaError as exc:
            self.log.warning("could not write group %s to %s: %s", group_id, OFFSETS_TOPIC, exc)
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE) from None

    def store_group(self, group: ClassicGroup) -> ErrorCode:
        """Write a classic group's metadata (Kafka does so at each generation); the
        append's error (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) or NONE. The caller
        that answers on it waits for :meth:`replicated`."""
        try:
            self._append(group.group_id, [(encode_group_key(group.group_id), encode_group_value(group.to_record(self.now_ms())))])
        except KafkaError as exc:
            self.log.warning("group %s: metadata not persisted", group.group_id)
            return exc.code
        return ErrorCode.NONE

    def _delete_group(self, group_id: str) -> None:
        """Tombstones for the group and its offsets, then forget it."""
        records: list[tuple[bytes, bytes | None]] = [
            (encode_offset_key(group_id, t, p), None) for (t, p) in self.offsets.get(group_id, {})
        ]
        records.append((encode_group_key(group_id), None))
        current = self.groups.get(group_id)
        if current is not None and current.group_type == "consumer":
            records += self.consumer.tombstones(current)  # type: ignore[arg-type]
        self._append(group_id, records)
        group = self.groups.pop(group_id, None)
        if isinstance(group, ClassicGroup):
            group.state = GroupState.DEAD
        self.offsets.pop(group_id, None)

    def convert_to_classic(self, group_id: str) -> ClassicGroup:
        """An empty group of the other protocol becomes a classic one, keeping offsets."""
        group = ClassicGroup(group_id, self.now_ms())
        old = self.groups.get(group_id)
        if old is not None and old.group_type == "share":
            raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a classic group.")
        if old is not None and not isinstance(old, ClassicGroup):
            self.consumer.shutdown(old)
            with contextlib.suppress(KafkaError):
                self._append(group_id, self.consumer.tombstones(old))
        self.groups[group_id] = group
        return group

    # -- offsets --------------------------------------------------------------------

    def _validate_commit(
        self, group_id: str, generation: int, member_id: str, instance_id: str | None, transactional: bool = False,
        api_version: int = 0,
    ) -> None:
        group = self.groups.get(group_id)
        if group is None:
            # Kafka's OffsetMetadataManager.validateOffsetCommit: generation (member
            # epoch) -1 is an admin or a consumer outside group management, whatever
            # member id it names (an unsubscribed KIP-848 librdkafka consumer sends its
            # own): a simple group is created. Otherwise OffsetCommit v9+ answers
            # GROUP_ID_NOT_FOUND, older versions ILLEGAL_GENERATION.
            if generation >= 0:
                raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND if api_version >= 9 else ErrorCode.ILLEGAL_GENERATION)
            return
        if group.group_type == "share":  # Kafka's ShareGroup.validateOffsetCommit
            raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
        if transactional and generation < 0 and not member_id and instance_id is None:
            # TxnOffsetCommit below v3 names no member (aiokafka, so faust, sends v0):
            # Kafka accepts it whatever the group's state, for backward compatibility
            if isinstance(group, ClassicGroup) and group.state is GroupState.DEAD:
                raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            return
        if not isinstance(group, ClassicGroup):
            self.consumer.validate_commit(group, member_id, generation)
            return
        if group.state is GroupState.DEAD:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if generation < 0 and group.state is GroupState.EMPTY:
            return  # a standalone consumer or an admin: no membership to check
        if group.state is GroupState.COMPLETING_REBALANCE:
            raise KafkaError(ErrorCode.REBALANCE_IN_PROGRESS)
        if instance_id is not None:
            registered = group.static_members.get(instance_id)
            if registered is not None and registered != member_id:
                raise KafkaError(ErrorCode.FENCED_INSTANCE_ID)
        member = group.members.get(member_id)
        if member is None:
            raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
        if generation != group.generation_id:
            raise KafkaError(ErrorCode.ILLEGAL_GENERATION)
        self.classic.schedule_expiry(group, member)

    def commit_offsets(
        self, group_id: str, generation: int, member_id: str, instance_id: str | None, commits: list[OffsetCommit],
        api_version: int = 0,
    ) -> list[ErrorCode]:
        """Validate and persist a commit; one error per partition, in request order."""
        try:
            self._validate_commit(group_id, generation, member_id, instance_id, api_version=api_version)
        except KafkaError as exc:
            return [exc.code for _ in commits]
        now = self.now_ms()
        errors, accepted = self._offset_values(commits, now)
        records = [(encode_offset_key(group_id, *tp), encode_offset_value(value)) for tp, value in accepted]
        try:
            self._append(group_id, records)
        except KafkaError as exc:
            return [exc.code if e is ErrorCode.NONE else e for e in errors]
        if accepted:
            if group_id not in self.groups:
                self.groups[group_id] = ClassicGroup(group_id, now)
            stored = self.offsets.setdefault(group_id, {})
            for tp, value in accepted:
                stored[tp] = value
        return errors

    def _offset_values(
        self, commits: list[OffsetCommit], now: int
    ) -> tuple[list[ErrorCode], list[tuple[TopicPartition, OffsetValue]]]:
        """What OffsetCommit and TxnOffsetCommit both check per partition: one error
        per commit in request order (OFFSET_METADATA_TOO_LARGE past
        ``offset.metadata.max.bytes``, else NONE) and the offsets accepted."""
        max_metadata = self.broker.config.int("offset.metadata.max.bytes")
        errors: list[ErrorCode] = []
        accepted: list[tuple[TopicPartition, OffsetValue]] = []
        for c in commits:
            metadata = c.metadata or ""
            if len(metadata.encode()) > max_metadata:
                errors.append(ErrorCode.OFFSET_METADATA_TOO_LARGE)
                continue
            accepted.append(((c.topic, c.partition), OffsetValue(c.offset, c.leader_epoch, metadata, now)))
            errors.append(ErrorCode.NONE)
        return errors, accepted

    def txn_commit_offsets(
        self,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        generation: int,
        member_id: str,
        instance_id: str | None,
        commits: list[OffsetCommit],
    ) -> list[ErrorCode]:
        """TxnOffsetCommit: validate as a commit, write the offsets to the group's
        partition in a transactional batch of the producer (so a reload finds them
        pending, as Kafka's coordinator does), keep them pending until the producer's
        marker completes the transaction (:meth:`complete_transaction`)."""
        try:
            self._validate_commit(group_id, generation, member_id, instance_id, transactional=True)
        except KafkaError as exc:
            return [exc.code for _ in commits]
        now = self.now_ms()
        errors, accepted = self._offset_values(commits, now)
        records = [
            RecordInput(encode_offset_key(group_id, *tp), encode_offset_value(value), (), now) for tp, value in accepted
        ]
        if records:
            partition = self.broker.partition(OFFSETS_TOPIC, self.partition_of(group_id))
            if partition is None:
                return [ErrorCode.NOT_COORDINATOR if e is ErrorCode.NONE else e for e in errors]
            batch = build_batch(records, producer_id=producer_id, producer_epoch=producer_epoch, is_transactional=True)
            try:
                partition.append_as_coordinator(memoryview(bytearray(batch)), now)
            except KafkaError as exc:
                self.log.warning("could not write transactional offsets of %s: %s", group_id, exc)
                code = ErrorCode.NOT_COORDINATOR if exc.code is ErrorCode.NOT_LEADER_OR_FOLLOWER else ErrorCode.COORDINATOR_NOT_AVAILABLE
                return [code if e is ErrorCode.NONE else e for e in errors]
            pending = self.pending_txn_offsets.setdefault(producer_id, {}).setdefault(group_id, {})
            for tp, value in accepted:
                pending[tp] = value
        return errors

    def pending_txn_partitions(self, group_id: str) -> set[TopicPartition]:
        """Partitions of ``group_id`` with transactional offsets awaiting their marker
        (OffsetFetch with require_stable answers them UNSTABLE_OFFSET_COMMIT)."""
        out: set[TopicPartition] = set()
        for groups in self.pending_txn_offsets.values():
            out.update(groups.get(group_id, ()))
        return out

    def complete_transaction(self, offsets_partition: int, producer_id: int, committed: bool) -> None:
        """A commit or abort marker of ``producer_id`` landed on ``__consumer_offsets``
        partition ``offsets_partition``: its pending offsets of the groups there become
        the committed offsets, or are dropped (Kafka's onTransactionCompleted)."""
        groups = self.pending_txn_offsets.get(producer_id)
        if not groups:
            return
        for group_id in [g for g in groups if self.partition_of(g) == offsets_partition]:
            pending = groups.pop(group_id)
            if not committed or not pending:
                continue
            if group_id not in self.groups:
                self.groups[group_id] = ClassicGroup(group_id, self.now_ms())
            self.offsets.setdefault(group_id, {}).update(pending)
        if not groups:
            del self.pending_txn_offsets[producer_id]

    def txn_marker_written(self, topic: str, index: int, producer_id: int, producer_epoch: int, commit: bool) -> None:
        """The broker's marker listener (:class:`moldau.ports.TxnMarkerListener`):
        a marker replicated on ``__consumer_offsets`` partition ``index``."""
        if topic == OFFSETS_TOPIC:
            self.complete_transaction(index, producer_id, commit)

    async def replicated(self, group_id: str) -> ErrorCode:
        """Wait until what this group wrote to its ``__consumer_offsets`` partition is
        committed (the partition's ISR has it), as Kafka's coordinator answers only
        then; bounded by ``offsets.commit.timeout.ms``. Failures map as Kafka's do:
        a lost leadership is NOT_COORDINATOR, a timeout COORDINATOR_NOT_AVAILABLE."""
        partition = self.broker.partition(OFFSETS_TOPIC, self.partition_of(group_id))
        if partition is None:
            return ErrorCode.NOT_COORDINATOR
        timeout_s = self.broker.config.int("offsets.commit.timeout.ms") / 1000
        code = await partition.wait_high_watermark(partition.log.log_end_offset, timeout_s)
        if code is ErrorCode.NOT_LEADER_OR_FOLLOWER:
            return ErrorCode.NOT_COORDINATOR
        if code is ErrorCode.REQUEST_TIMED_OUT:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return code

    async def replicated_errors(self, group_id: str, errors: list[ErrorCode]) -> list[ErrorCode]:
        """A commit's per-partition errors once it is replicated (:meth:`replicated`):
        the partitions it wrote take the replication's failure, if it failed."""
        if ErrorCode.NONE in errors:
            replicated = await self.replicated(group_id)
            if replicated is not ErrorCode.NONE:
                return [replicated if e is ErrorCode.NONE else e for e in errors]
        return errors

    def fetch_offsets(
        self, group_id: str, topics: list[tuple[str, list[int]]] | None
    ) -> list[tuple[str, list[tuple[int, OffsetValue | None]]]]:
        """Committed offsets of the asked partitions (None where there is none), or all."""
        stored = self.offsets.get(group_id, {})
        if topics is None:
            by_topic: dict[str, list[tuple[int, OffsetValue | None]]] = {}
            for (t, p), value in sorted(stored.items()):
                by_topic.setdefault(t, []).append((p, value))
            return list(by_topic.items())
        return [(t, [(p, stored.get((t, p))) for p in parts]) for t, parts in topics]

    def delete_offsets(self, group_id: str, partitions: list[TopicPartition]) -> list[ErrorCode]:
        """OffsetDelete: refused for topics a live consumer group subscribes to."""
        group = self.groups.get(group_id)
        if group is None or group.group_type == "share":  # a share group's: DeleteShareGroupOffsets
            raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND)
        if isinstance(group, ClassicGroup):
            if group.state is GroupState.DEAD:
                raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND)
            if group.state is not GroupState.EMPTY and group.protocol_type != "consumer":
                raise KafkaError(ErrorCode.NON_EMPTY_GROUP)
            subscribed = group.subscribed_topics() or set() if group.state is not GroupState.EMPTY else set()
        else:
            subscribed = group.subscribed_topic_names()
        stored = self.offsets.get(group_id, {})
        errors: list[ErrorCode] = []
        records: list[tuple[bytes, bytes | None]] = []
        gone: list[TopicPartition] = []
        for t, p in partitions:
            if t in subscribed:
                errors.append(ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC)
                continue
            errors.append(ErrorCode.NONE)
            if (t, p) in stored:
                records.append((encode_offset_key(group_id, t, p), None))
                gone.append((t, p))
        self._append(group_id, records)
        for tp in gone:
            stored.pop(tp, None)
        return errors

    # -- group admin ----------------------------------------------------------------

    def delete_group(self, group_id: str) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if isinstance(group, ClassicGroup) and group.state is GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if not group.is_empty:
            return ErrorCode.NON_EMPTY_GROUP
        try:
            if not isinstance(group, ClassicGroup):
                self.consumer.shutdown(group)  # type: ignore[arg-type]
            self._delete_group(group_id)
        except KafkaError as exc:
            return exc.code
        if group.group_type == "share":
            self.share.deleted(group_id)
        self.log.info("group %s deleted", group_id)
        return ErrorCode.NONE

    def list_groups(self) -> list[tuple[str, str, str, str]]:
        """(group id, protocol type, state, group type) of every group we coordinate."""
        result = []
        for group_id, group in self.groups.items():
            with contextlib.suppress(KafkaError):
                self.check_coordinator(group_id)
                if isinstance(group, ClassicGroup):
                    if group.state is GroupState.DEAD:
                        continue
                    result.append((group_id, group.protocol_type or "", group.state.value, "classic"))
                else:
                    result.append((group_id, group.group_type, group.state_name, group.group_type))
        return result

    # -- expiration -----------------------------------------------------------------

    async def _expiration_loop(self) -> None:
        interval = self.broker.config.int("offsets.retention.check.interval.ms") / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.expire_offsets()
            except Exception:
                self.log.exception("offset expiration failed")

    def expire_offsets(self) -> int:
        """Drop expired offsets (see the module doc); returns how many were dropped."""
        retention_ms = self.broker.config.int("offsets.retention.minutes") * 60_000
        now = self.now_ms()
        dropped = 0
        for group_id, group in list(self.groups.items()):
            if group_id not in self.offsets and group.is_empty and self._serves(group_id):
                with contextlib.suppress(KafkaError):
                    self._delete_group(group_id)  # nothing left to remember
        for group_id in list(self.offsets):
            group = self.groups.get(group_id)
            if group is None:
                continue
            try:
                self.check_coordinator(group_id)
            except KafkaError:
                continue
            stored = self.offsets[group_id]
            if isinstance(group, ClassicGroup):
                if group.state is GroupState.EMPTY:
                    # The clock starts when the group became empty, or at the commit.
                    expired = [
                        tp for tp, v in stored.items()
                        if now - max(group.state_timestamp, v.commit_timestamp) >= retention_ms
                    ]
                elif group.state is GroupState.STABLE and group.protocol_type == "consumer":
                    # A live group keeps the offsets of the topics it subscribes to.
                    keep = group.subscribed_topics() or set()
                    expired = [
                        tp for tp, v in stored.items()
                        if tp[0] not in keep and now - v.commit_timestamp >= retention_ms
                    ]
                else:
                    continue
            else:
                if not group.is_empty:
                    continue
                expired = [tp for tp, v in stored.items() if now - v.commit_timestamp >= retention_ms]
            if not expired:
                continue
            try:
                self._append(group_id, [(encode_offset_key(group_id, t, p), None) for t, p in expired])
            except KafkaError:
                continue
            for tp in expired:
                del stored[tp]
            dropped += len(expired)
            self.log.info("group %s: %d offset(s) expired", group_id, len(expired))
            if not stored and group.is_empty:
                with contextlib.suppress(KafkaError):
                    self._delete_group(group_id)
        return dropped
