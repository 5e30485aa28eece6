"""The one interface to cluster metadata, with its backends (local file, in-memory)."""

from moldau.metastore.local import LocalMetaStore
from moldau.metastore.memory import MemoryMetaStore
from moldau.metastore.store import ClusterImage, MetaStore, PartitionState, TopicRecord

__all__ = ["ClusterImage", "LocalMetaStore", "MemoryMetaStore", "MetaStore", "PartitionState", "TopicRecord"]
