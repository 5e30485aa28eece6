"""The seams: what the controller, the coordinators and replication need from a broker.

Theory of operation: :class:`~moldau.broker.broker.Broker` builds the controller, the
group coordinator, the producer-id manager and the replica manager and hands each of
them itself; each of them sees the broker only through the narrow interface below
that names what it uses -- read the topics, append to and read a partition, learn of
leadership changes, write metadata through the store and apply it. So none of them
imports the broker (not even for type checking), each can be read on its own, and a
test can run one against a small real implementation of its interface instead of a
whole broker (``tests/coordinator/test_coordinator_alone.py``). The replication
fetchers, a transaction coordinator and the etcd-backed cluster code are meant to
plug in the same way: add the members they use to an interface here, never an
import of the broker. ``tests/test_layering.py`` fails if such an import comes back.

These are :class:`typing.Protocol` classes: the broker satisfies them by its shape,
nothing subclasses them. Attributes are declared as read-only properties, so a plain
attribute (a ``dict`` where a ``Mapping`` is asked) satisfies them. They are
``runtime_checkable`` only so that a test can check that the broker has every member.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from moldau.config.broker import BrokerConfig
    from moldau.metastore.store import BrokerInfo, MetaStore, PartitionState, TopicRecord
    from moldau.protocol.errors import ErrorCode
    from moldau.storage.config import LogConfig
    from moldau.storage.log import AppendInfo, LogReadInfo
    from moldau.storage.log_manager import LogManager

T = TypeVar("T")
#: the partition type a host holds (replication's Partition): named by the user of the
#: interface, so that this module depends on nothing above the ground floor
P_co = TypeVar("P_co", covariant=True)

TopicPartition = tuple[str, int]


class ChangeRunner(Protocol):
    """Runs a change that spans an ``await`` (write the store, then apply) to the end,
    even when its requester is cancelled; exclusive changes one at a time
    (:class:`moldau.broker.changes.StateChanges`)."""

    async def run(self, step: Callable[[], Awaitable[T]], *, exclusive: bool = True) -> T: ...


# -- the controller -----------------------------------------------------------------


@runtime_checkable
class ControllerHost(Protocol):
    """What :class:`moldau.controller.controller.Controller` uses: the broker's view of
    topics and live brokers to decide, the store to write the decision, and the broker
    to apply it (create this broker's logs, then its partitions)."""

    @property
    def node_id(self) -> int: ...
    @property
    def config(self) -> BrokerConfig: ...
    @property
    def store(self) -> MetaStore: ...
    @property
    def changes(self) -> ChangeRunner: ...
    @property
    def topics(self) -> Mapping[str, TopicRecord]: ...
    @property
    def partitions(self) -> Mapping[TopicPartition, object]: ...
    @property
    def log_manager(self) -> LogManager: ...

    def log_config_for(self, topic: TopicRecord) -> LogConfig: ...
    def live_brokers(self) -> list[BrokerInfo]: ...
    def apply_topic(self, topic: TopicRecord) -> None: ...
    def remove_topic(self, name: str) -> None: ...
    async def create_at_controller(self, topic: TopicRecord) -> TopicRecord | None:
        """Send a creation (auto-created or internal topic) to the elected controller
        when this broker is not it; None when this broker decides itself."""
        ...


# -- the coordinators ---------------------------------------------------------------


class CoordinatorLog(Protocol):
    """The part of a partition's log a coordinator reads when it loads its state."""

    @property
    def log_start_offset(self) -> int: ...
    @property
    def log_end_offset(self) -> int: ...

    def read(
        self, fetch_offset: int, max_bytes: int, *, max_offset: int | None = None, min_one_message: bool = True
    ) -> LogReadInfo: ...


class CoordinatorPartition(Protocol):
    """A partition of an internal topic (``__consumer_offsets``) as its coordinator
    uses it: append as leader, wait until the ISR has it, read it back at load."""

    @property
    def is_leader(self) -> bool: ...
    @property
    def log(self) -> CoordinatorLog: ...

    def append_as_leader(self, records: memoryview, required_acks: int, now_ms: int) -> AppendInfo: ...
    async def wait_high_watermark(self, offset: int, timeout_s: float) -> ErrorCode: ...


class TopicCreator(Protocol):
    """How a coordinator creates its internal topic on first use: through the
    controller, as any topic is created."""

    def live_brokers(self) -> list[int]: ...
    def plan_topic(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: dict[str, str | None],
        assignments: dict[int, list[int]] | None = None,
        pending: int = 0,
    ) -> TopicRecord: ...
    async def create_topic(self, topic: TopicRecord) -> TopicRecord: ...


@runtime_checkable
class GroupCoordinatorHost(Protocol):
    """What :class:`moldau.coordinator.group.GroupCoordinator` uses: configs, the topics
    (to size ``__consumer_offsets`` and resolve subscriptions), the controller to create
    its topic, and its partitions. Leadership changes come the other way, by
    :class:`LeadershipListener`."""

    @property
    def config(self) -> BrokerConfig: ...
    @property
    def topics(self) -> Mapping[str, TopicRecord]: ...
    @property
    def controller(self) -> TopicCreator: ...

    def partition(self, topic: str, index: int) -> CoordinatorAppendPartition | None: ...


class LeadershipListener(Protocol):
    """Told by the broker, in metadata order, when this broker starts or stops leading a
    partition and when a topic is deleted (Kafka's onElection/onResignation), so that a
    coordinator loads or unloads the state kept in that partition."""

    def leadership_changed(self, topic: str, index: int, is_leader: bool) -> None: ...
    def topic_removed(self, name: str) -> None: ...


class CoordinatorAppendPartition(CoordinatorPartition, Protocol):
    """A partition a coordinator also writes as Kafka's ``AppendOrigin.COORDINATOR``
    does: batches that carry a producer id without sequence numbers (the group
    coordinator's transactional offsets), numbered by the leader and stamped with its
    epoch, none of a client's checks."""

    @property
    def leader_epoch(self) -> int: ...

    def append_as_coordinator(self, records: memoryview, now_ms: int) -> AppendInfo: ...


@dataclass(frozen=True)
class TxnMarker:
    """One WriteTxnMarkers entry: end a producer's transaction on these partitions.

    ``committed`` is the transaction's result; ``coordinator_epoch`` the leader epoch
    of the ``__transaction_state`` partition that decided it (a partition leader drops
    markers of an older coordinator epoch than the last it saw for the producer)."""

    producer_id: int
    producer_epoch: int
    committed: bool
    coordinator_epoch: int
    partitions: tuple[TopicPartition, ...]


class TxnMarkerSender(Protocol):
    """How the transaction coordinator reaches a partition leader: in-process when it is
    this broker (the log side's ``write_txn_markers``, see :class:`TxnMarkerHost`),
    WriteTxnMarkers over the network otherwise.
    Errors per partition; a broker that cannot be reached answers its partitions with
    a retriable code (NOT_LEADER_OR_FOLLOWER or REQUEST_TIMED_OUT)."""

    async def send_txn_markers(self, broker_id: int, marker: TxnMarker) -> dict[TopicPartition, ErrorCode]: ...


class ProducerIdGenerator(Protocol):
    """Producer ids that never repeat (:class:`moldau.coordinator.producer_ids.ProducerIdManager`)."""

    async def generate(self) -> int: ...


@runtime_checkable
class TransactionCoordinatorHost(Protocol):
    """What :class:`moldau.coordinator.transaction.TransactionCoordinator` uses: configs,
    the topics (leaders of the partitions a transaction touched, the size of
    ``__transaction_state``), the controller to create its topic, its partitions,
    producer ids, and the marker path to partition leaders. Leadership changes of
    ``__transaction_state`` come by :class:`LeadershipListener`."""

    @property
    def node_id(self) -> int: ...
    @property
    def config(self) -> BrokerConfig: ...
    @property
    def topics(self) -> Mapping[str, TopicRecord]: ...
    @property
    def controller(self) -> TopicCreator: ...
    @property
    def producer_ids(self) -> ProducerIdGenerator: ...
    @property
    def txn_markers(self) -> TxnMarkerSender: ...

    def partition(self, topic: str, index: int) -> CoordinatorAppendPartition | None: ...


class ProducerIdBlocks(Protocol):
    """Where :class:`moldau.coordinator.producer_ids.ProducerIdManager` reserves blocks
    of producer ids that never repeat (the metadata store)."""

    async def allocate_producer_ids(self, count: int) -> int: ...


# -- transaction markers -------------------------------------------------------------


class TxnMarkerListener(Protocol):
    """Told when a transaction marker has been written -- and replicated to the ISR -- on
    a partition of ``__consumer_offsets`` this broker leads (Kafka's
    ``GroupCoordinator.onTransactionCompleted``), so that the group coordinator makes
    the offsets that producer committed in its transaction (TxnOffsetCommit) visible,
    or drops them on an abort. Called on the event loop, once per partition and
    marker; a coordinator that loads a partition later finds the markers in its log."""

    def txn_marker_written(self, topic: str, index: int, producer_id: int, producer_epoch: int, commit: bool) -> None: ...


class TxnMarkerPartition(Protocol):
    """A partition as WriteTxnMarkers uses it (replication's Partition)."""

    @property
    def is_leader(self) -> bool: ...

    def write_txn_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        now_ms: int,
        transaction_version: int = 0,
    ) -> AppendInfo: ...
    async def wait_high_watermark(self, offset: int, timeout_s: float) -> ErrorCode: ...


@runtime_checkable
class TxnMarkerHost(Protocol):
    """What :func:`moldau.replication.txn_markers.write_txn_markers` uses: the
    partitions this broker holds and the listeners of ``__consumer_offsets`` markers."""

    def partition(self, topic: str, index: int) -> TxnMarkerPartition | None: ...
    @property
    def txn_marker_listeners(self) -> list[TxnMarkerListener]: ...


# -- replication --------------------------------------------------------------------


@runtime_checkable
class ReplicaHost(Protocol[P_co]):
    """What :class:`moldau.replication.manager.ReplicaManager` and its fetchers use:
    this broker's partitions, topic names by id (replica fetches answer by id), the
    live brokers' endpoints and the ISR write through the store, and the broker to
    apply the ISR it wrote."""

    @property
    def node_id(self) -> int: ...
    @property
    def config(self) -> BrokerConfig: ...
    @property
    def store(self) -> MetaStore: ...
    @property
    def changes(self) -> ChangeRunner: ...
    @property
    def partitions(self) -> Mapping[TopicPartition, P_co]: ...
    @property
    def topic_names_by_id(self) -> Mapping[uuid.UUID, str]: ...

    def apply_partition_state(self, topic: str, index: int, state: PartitionState) -> None: ...
