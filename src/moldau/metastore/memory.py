"""An in-memory metadata store, for tests and throwaway brokers."""

from __future__ import annotations

import copy

from moldau.metastore.store import (
    ClusterImage,
    MetaStore,
    TopicExistsError,
    TopicRecord,
    apply_security,
    new_cluster_id,
)


class MemoryMetaStore(MetaStore):
    def __init__(self) -> None:
        self.image = ClusterImage(cluster_id=new_cluster_id())

    async def load(self) -> ClusterImage:
        return copy.deepcopy(self.image)

    async def create_topic(self, topic: TopicRecord) -> None:
        if topic.name in self.image.topics:
            raise TopicExistsError(topic.name)
        self.image.topics[topic.name] = copy.deepcopy(topic)

    async def get_topic(self, name: str) -> TopicRecord | None:
        topic = self.image.topics.get(name)
        return None if topic is None else copy.deepcopy(topic)

    async def update_topic(self, topic: TopicRecord) -> None:
        self.image.topics[topic.name] = copy.deepcopy(topic)

    async def delete_topic(self, name: str) -> None:
        self.image.topics.pop(name, None)

    async def allocate_producer_ids(self, count: int) -> int:
        first = self.image.next_producer_id
        self.image.next_producer_id += count
        return first

    async def set_broker_configs(self, scope: str, configs: dict[str, str]) -> None:
        self.image.broker_configs[scope] = dict(configs)

    async def update_security(self, kind: str, changes: dict[str, str | None]) -> None:
        apply_security(self.image.security, kind, changes)
