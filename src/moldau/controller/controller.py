"""Topic lifecycle decisions, taken by the controller and written to the metadata store.

The controller validates a request the way Kafka does (legal names, partition counts,
replication factor against live brokers, configs), places replicas, picks leaders,
writes the result to the store and only then applies it to the broker. With one
broker it is always this broker; in cluster mode the elected controller does the same
through etcd.

Each change (store, then apply) is one step run by the broker's
:class:`~moldau.broker.changes.StateChanges`: it completes even when the client that
asked hangs up, and steps run one at a time, so each re-checks the state the previous
one left. A topic found in the store but not applied here (a create cut short by an
older broker, or made by another controller) is applied, not refused.

Bounds (Kafka's, and one of our own), checked before any placement is computed, so a
41-byte request asking for 8,388,608 partitions costs nothing:

* ``MAX_RECORDS_PER_USER_OP``: Kafka's KRaft controller refuses a user operation that
  would write more than 10,000 metadata records (``QuorumController``'s
  ``MAX_RECORDS_PER_USER_OP``; ``BoundedListTooLongException``, answered as
  POLICY_VIOLATION "Unable to perform excessively large batch operation."). A topic
  creation writes one TopicRecord, one PartitionRecord per partition and one
  ConfigRecord per override; CreatePartitions one PartitionRecord per new partition;
  the whole request counts, and past the cap every topic of it is refused.
* ``moldau.max.broker.partitions``: how many partitions this broker will host. Kafka
  has no such limit (KIP-578 proposed ``max.broker.partitions`` and was never
  implemented); a Python broker needs one, because every hosted partition costs a
  directory, a Log and a Partition object, and every metadata change rewrites the
  whole store. Past it a creation is refused with POLICY_VIOLATION, as a topic policy
  would refuse it, and nothing is created.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import TYPE_CHECKING

from moldau.config.broker import validate_topic_configs
from moldau.controller.placement import assign_replicas, continuation, validate_assignment
from moldau.metastore.store import PartitionState, TopicExistsError, TopicRecord
from moldau.protocol.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from moldau.ports import ControllerHost

MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})
#: Kafka's QuorumController.MAX_RECORDS_PER_USER_OP (= MAX_RECORDS_PER_BATCH).
MAX_RECORDS_PER_USER_OP = 10_000
EXCESSIVE_BATCH_MESSAGE = "Unable to perform excessively large batch operation."
#: From this many new local partitions on, their logs are created in a worker thread.
PREPARE_IN_THREAD = 64


def excessive_batch() -> KafkaError:
    """Kafka's answer to an operation past MAX_RECORDS_PER_USER_OP."""
    return KafkaError(ErrorCode.POLICY_VIOLATION, EXCESSIVE_BATCH_MESSAGE)


def validate_topic_name(name: str | None) -> None:
    if not name:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name cannot be \".\" or \"..\"")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise KafkaError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters",
        )
    if not _LEGAL_NAME.fullmatch(name):
        raise KafkaError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"Topic name {name!r} is illegal, it contains a character other than "
            "ASCII alphanumerics, '.', '_' and '-'",
        )


class Controller:
    def __init__(self, broker: ControllerHost) -> None:
        self.broker = broker

    def live_brokers(self) -> list[int]:
        return sorted(b.broker_id for b in self.broker.live_brokers())

    # bounds ---------------------------------------------------------------------------

    def creation_records(self, name: str, num_partitions: int, assignments: int, configs: int) -> int:
        """Metadata records Kafka would write to create this topic; 0 if it is refused early.

        Cheap on purpose (no placement, no collision scan): it is summed over a whole
        CreateTopics request before any topic of it is planned.
        """
        if name in self.broker.topics:
            return 0
        try:
            validate_topic_name(name)
        except KafkaError:
            return 0
        if assignments:
            partitions = assignments
        elif num_partitions == -1:
            partitions = self.broker.config.int("num.partitions")
        else:
            partitions = num_partitions
        return 1 + partitions + configs if partitions > 0 else 0

    def partition_records(self, name: str, count: int) -> int:
        """PartitionRecords Kafka would write for CreatePartitions to ``count``; 0 if refused."""
        topic = self.broker.topics.get(name)
        if topic is None:
            return 0
        return max(0, count - len(topic.partitions))

    def check_broker_capacity(self, new: int, pending: int = 0) -> None:
        """Refuse to host more than ``moldau.max.broker.partitions`` partitions.

        ``pending`` counts partitions already granted to earlier topics of the same
        request that are not created (validate_only).
        """
        limit = self.broker.config.int("moldau.max.broker.partitions")
        hosted = len(self.broker.partitions) + pending
        if hosted + new > limit:
            raise KafkaError(
                ErrorCode.POLICY_VIOLATION,
                f"Adding {new} partition(s) would exceed moldau.max.broker.partitions ({limit}): "
                f"this broker hosts {hosted}.",
            )

    def _check_configs(self, configs: dict[str, str | None]) -> dict[str, str]:
        try:
            return validate_topic_configs(configs)
        except ValueError as exc:
            raise KafkaError(ErrorCode.INVALID_CONFIG, str(exc)) from None

    def _placement(
        self, num_partitions: int, replication_factor: int, first: int = 0, partition0: list[int] | None = None
    ) -> dict[int, PartitionState]:
        """Kafka's rack-aware placement over the live brokers (:mod:`.placement`)."""
        brokers = self.broker.live_brokers()
        start, shift = continuation(brokers, partition0 or [])
        assigned = assign_replicas(
            brokers, num_partitions, replication_factor, first_partition=first, start_index=start, shift=shift
        )
        return {
            index: PartitionState(leader=replicas[0], leader_epoch=0, replicas=replicas, isr=list(replicas))
            for index, replicas in assigned.items()
        }

    def validate_assignment(self, replicas: list[int], replication_factor: int | None = None) -> None:
        """Kafka's validateManualPartitionAssignment against the live brokers."""
        validate_assignment(replicas, set(self.live_brokers()), replication_factor)

    def plan_topic(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: dict[str, str | None],
        assignments: dict[int, list[int]] | None = None,
        pending: int = 0,
    ) -> TopicRecord:
        """Validate a new topic and decide its placement, without creating it.

        ``pending``: partitions of earlier topics of a validate_only request, counted
        against ``moldau.max.broker.partitions`` as if they had been created.
        """
        validate_topic_name(name)
        if name in self.broker.topics:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        normalised = name.replace(".", "_")
        for existing in self.broker.topics:
            if existing.replace(".", "_") == normalised:
                # Kafka's rule: '.' and '_' collide in metric names, so such pairs are refused.
                raise KafkaError(
                    ErrorCode.INVALID_TOPIC_EXCEPTION,
                    f"Topic '{name}' collides with existing topic: {existing}",
                )
        if num_partitions == -1:
            num_partitions = self.broker.config.int("num.partitions")
        if replication_factor == -1:
            replication_factor = self.broker.config.int("default.replication.factor")
        asked = len(assignments) if assignments else num_partitions
        if 1 + asked + len(configs) > MAX_RECORDS_PER_USER_OP:
            raise excessive_batch()
        if asked > 0:
            self.check_broker_capacity(asked, pending)
        if assignments:
            partitions = {}
            factor = None
            for index, replicas in assignments.items():
                self.validate_assignment(replicas, factor)
                factor = len(replicas)
                partitions[index] = PartitionState(leader=replicas[0], replicas=list(replicas), isr=list(replicas))
            if sorted(partitions) != list(range(len(partitions))):
                raise KafkaError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT, "partitions should be a consecutive 0-based integer sequence"
                )
        else:
            if num_partitions <= 0:
                raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
            if replication_factor <= 0:
                raise KafkaError(
                    ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0."
                )
            partitions = self._placement(num_partitions, replication_factor)
        return TopicRecord(name=name, topic_id=uuid.uuid4(), partitions=partitions, configs=self._check_configs(configs))

    async def prepare_logs(self, topic: TopicRecord) -> None:
        """Create the directories and files of this broker's new partitions in a worker
        thread, so that applying thousands of partitions does not hold the event loop
        for seconds (``apply_topic`` then finds the logs already open)."""
        broker = self.broker
        manager = broker.log_manager
        config = broker.log_config_for(topic)
        new = [
            index
            for index, state in topic.partitions.items()
            if broker.node_id in state.replicas and manager.get_log(topic.name, index) is None
        ]
        if len(new) < PREPARE_IN_THREAD:
            return

        def create() -> None:
            for index in new:
                manager.create_log(topic.name, index, config)

        # If the store then refuses the topic, the empty logs stay registered and are
        # reused by the next creation of that name; removing them here could race with
        # the thread, which a cancelled request does not stop.
        await asyncio.to_thread(create)

    async def create_topic(self, topic: TopicRecord, *, forward: bool = True) -> TopicRecord:
        """Create a planned topic. In a cluster only the elected controller decides:
        elsewhere (``forward``) the creation is sent to it, which places the replicas
        anew. The CreateTopics handler, which forwards whole requests itself, passes
        ``forward=False``, so a request is never forwarded twice."""
        if forward:
            created = await self.broker.create_at_controller(topic)
            if created is not None:
                return created
        return await self.broker.changes.run(lambda: self._create_topic(topic))

    async def _create_topic(self, topic: TopicRecord) -> TopicRecord:
        broker = self.broker
        if topic.name not in broker.topics:
            try:
                await self.prepare_logs(topic)
                await broker.store.create_topic(topic)
            except TopicExistsError:
                await self._heal(topic.name)
            else:
                broker.apply_topic(topic)
                return topic
        raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{topic.name}' already exists.")

    async def _heal(self, name: str) -> None:
        """Apply a topic the store holds but this broker does not have yet."""
        stored = await self.broker.store.get_topic(name)
        if stored is not None and name not in self.broker.topics:
            self.broker.apply_topic(stored)

    async def delete_topic(self, name: str) -> None:
        if name not in self.broker.topics:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if not self.broker.config.bool("delete.topic.enable"):
            raise KafkaError(ErrorCode.TOPIC_DELETION_DISABLED)
        await self.broker.changes.run(lambda: self._delete_topic(name))

    async def _delete_topic(self, name: str) -> None:
        if name not in self.broker.topics:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        await self.broker.store.delete_topic(name)
        self.broker.remove_topic(name)

    def plan_partitions(
        self, name: str, count: int, assignments: list[list[int]] | None, pending: int = 0
    ) -> TopicRecord:
        """Validate a partition increase and place the new partitions, without applying it."""
        topic = self.broker.topics.get(name)
        if topic is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
        current = len(topic.partitions)
        if count < current:
            raise KafkaError(
                ErrorCode.INVALID_PARTITIONS,
                f"Topic currently has {current} partitions, which is higher than the requested {count}.",
            )
        if count == current:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partitions.")
        if count - current > MAX_RECORDS_PER_USER_OP:
            raise excessive_batch()
        self.check_broker_capacity(count - current, pending)
        first_state = next(iter(topic.partitions.values()))
        # during a reassignment the replica list also holds those being removed
        replication_factor = len(first_state.replicas) - len(first_state.removing_replicas)
        if assignments is not None:
            if len(assignments) != count - current:
                raise KafkaError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"Attempted to add {count - current} additional partition(s), but only "
                    f"{len(assignments)} assignment(s) were specified.",
                )
            new = {}
            for offset, replicas in enumerate(assignments):
                self.validate_assignment(replicas, replication_factor)
                new[current + offset] = PartitionState(leader=replicas[0], replicas=list(replicas), isr=list(replicas))
        else:
            partition0 = topic.partitions.get(0)
            new = self._placement(
                count - current, replication_factor, first=current,
                partition0=None if partition0 is None else partition0.replicas,
            )
        return TopicRecord(topic.name, topic.topic_id, {**topic.partitions, **new}, dict(topic.configs))

    async def update_topic(self, topic: TopicRecord) -> None:
        await self.broker.changes.run(lambda: self._update_topic(topic))

    async def _update_topic(self, topic: TopicRecord) -> None:
        """Store and apply a planned update, rebased on the topic as it is now.

        An update either adds partitions (CreatePartitions) or changes configs
        (AlterConfigs), never both; planned before an earlier step finished, it keeps
        what that step did instead of writing back the state it was planned from.
        """
        current = self.broker.topics.get(topic.name)
        if current is None or current.topic_id != topic.topic_id:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{topic.name}' does not exist.")
        added = {i: p for i, p in topic.partitions.items() if i not in current.partitions}
        if added:
            partitions = {**current.partitions, **added}
            if sorted(partitions) != list(range(len(partitions))):
                raise KafkaError(
                    ErrorCode.INVALID_PARTITIONS, f"Topic '{topic.name}' changed while partitions were being added."
                )
            rebased = TopicRecord(topic.name, topic.topic_id, partitions, dict(current.configs))
        else:
            rebased = TopicRecord(topic.name, topic.topic_id, dict(current.partitions), dict(topic.configs))
        await self.prepare_logs(rebased)
        await self.broker.store.update_topic(rebased)
        self.broker.apply_topic(rebased)
