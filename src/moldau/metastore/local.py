"""The embedded metadata store of a single node: one JSON file in the data dir.

File format: ``cluster-metadata.json`` holds ``{"version": 1, "cluster_id": ...,
"topics": {name: TopicRecord}, "broker_configs": {...},
"next_producer_id": N}``. Every change rewrites it
atomically (temporary file, fsync, rename, fsync of the directory) in a worker thread,
so a crash leaves either the old or the new file, and the event loop never waits on
the disk. Changes are serialised by one lock, which makes each a compare-and-swap.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from pathlib import Path

from moldau.metastore.store import (
    ClusterImage,
    MetaStore,
    TopicExistsError,
    TopicRecord,
    new_cluster_id,
)

FILE_NAME = "cluster-metadata.json"


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LocalMetaStore(MetaStore):
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._image: ClusterImage | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> ClusterImage:
        if self.path.exists():
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            self._image = ClusterImage(
                cluster_id=raw["cluster_id"],
                topics={n: TopicRecord.from_json(t) for n, t in raw.get("topics", {}).items()},
                broker_configs={k: dict(v) for k, v in raw.get("broker_configs", {}).items()},
                next_producer_id=int(raw.get("next_producer_id", 0)),
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._image = ClusterImage(cluster_id=new_cluster_id())
            await self._save()
        return copy.deepcopy(self._image)

    async def _save(self) -> None:
        assert self._image is not None
        payload = {
            "version": 1,
            "cluster_id": self._image.cluster_id,
            "topics": {n: t.to_json() for n, t in self._image.topics.items()},
            "broker_configs": self._image.broker_configs,
            "next_producer_id": self._image.next_producer_id,
        }
        data = json.dumps(payload, indent=1, sort_keys=True).encode()
        await asyncio.to_thread(_write_atomically, self.path, data)

    async def create_topic(self, topic: TopicRecord) -> None:
        async with self._lock:
            assert self._image is not None
            if topic.name in self._image.topics:
                raise TopicExistsError(topic.name)
            self._image.topics[topic.name] = copy.deepcopy(topic)
            await self._save()

    async def update_topic(self, topic: TopicRecord) -> None:
        async with self._lock:
            assert self._image is not None
            self._image.topics[topic.name] = copy.deepcopy(topic)
            await self._save()

    async def delete_topic(self, name: str) -> None:
        async with self._lock:
            assert self._image is not None
            self._image.topics.pop(name, None)
            await self._save()

    async def allocate_producer_ids(self, count: int) -> int:
        async with self._lock:
            assert self._image is not None
            first = self._image.next_producer_id
            self._image.next_producer_id = first + count
            await self._save()
            return first

    async def set_broker_configs(self, scope: str, configs: dict[str, str]) -> None:
        async with self._lock:
            assert self._image is not None
            self._image.broker_configs[scope] = dict(configs)
            await self._save()
