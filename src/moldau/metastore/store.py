"""Cluster metadata and the store interface every backend implements.

The broker never knows where metadata lives: a single node keeps it in a local file
(:class:`~moldau.metastore.local.LocalMetaStore`), tests in memory, and a cluster in
etcd. Writes are compare-and-swap on the topic record, so two controllers can never
both create the same topic; the image handed back is the source of truth the broker's
caches are rebuilt from.
"""

from __future__ import annotations

import abc
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartitionState:
    """Leadership of one partition: who leads, in which epoch, and who is in sync."""

    leader: int
    leader_epoch: int = 0
    replicas: list[int] = field(default_factory=list)
    isr: list[int] = field(default_factory=list)
    partition_epoch: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "leader": self.leader,
            "leader_epoch": self.leader_epoch,
            "replicas": self.replicas,
            "isr": self.isr,
            "partition_epoch": self.partition_epoch,
        }

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


class TopicExistsError(Exception):
    """A create lost the compare-and-swap: the topic is already there."""


class MetaStore(abc.ABC):
    """What the broker needs of a metadata store."""

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

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def new_cluster_id() -> str:
    """A cluster id in Kafka's form: a base64url UUID without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
