"""The embedded metadata store of a single node: one JSON file in the data dir.

File format: ``cluster-metadata.json`` holds ``{"version": 1, "cluster_id": ...,
"topics": {name: TopicRecord}, "broker_configs": {...},
"next_producer_id": N, "security": {kind: {key: value}}}``. Every change rewrites it
atomically (temporary file, fsync, rename, fsync of the directory) in a worker thread,
so a crash leaves either the old or the new file, and the event loop never waits on
the disk. Changes are serialised by one lock, which makes each a compare-and-swap.
Each change runs in a task of its own that a cancelled caller cannot stop: the lock
is held until its file is written, so two writes never share the temporary file and
the image in memory never runs ahead of the file for longer than one write.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from moldau.metastore.store import (
    ClusterImage,
    MetaStore,
    TopicExistsError,
    TopicRecord,
    apply_security,
    new_cluster_id,
)

FILE_NAME = "cluster-metadata.json"
T = TypeVar("T")


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
        self._scram: dict[str, dict[str, dict[str, Any]]] = {}

    async def load(self) -> ClusterImage:
        if self.path.exists():
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            self._image = ClusterImage(
                cluster_id=raw["cluster_id"],
                topics={n: TopicRecord.from_json(t) for n, t in raw.get("topics", {}).items()},
                broker_configs={k: dict(v) for k, v in raw.get("broker_configs", {}).items()},
                next_producer_id=int(raw.get("next_producer_id", 0)),
                security={k: dict(v) for k, v in raw.get("security", {}).items()},
            )
            self._scram = {u: dict(m) for u, m in raw.get("scram_credentials", {}).items()}
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
            "security": self._image.security,
            "scram_credentials": self._scram,
        }
        data = json.dumps(payload, indent=1, sort_keys=True).encode()
        await asyncio.to_thread(_write_atomically, self.path, data)

    async def _change(self, step: Callable[[ClusterImage], T]) -> T:
        """Apply ``step`` to the image and write the file, under the lock, to the end.

        Steps replace entries, never edit them in place, so a shallow copy is enough
        to put the image back when the write fails (a full disk): memory never claims
        what the file does not hold.
        """

        async def locked() -> T:
            async with self._lock:
                image = self._image
                assert image is not None
                saved = (dict(image.topics), dict(image.broker_configs), image.next_producer_id, dict(image.security))
                try:
                    result = step(image)
                    await self._save()
                except BaseException:
                    image.topics, image.broker_configs, image.next_producer_id, image.security = saved
                    raise
                return result

        return await asyncio.shield(asyncio.ensure_future(locked()))

    async def create_topic(self, topic: TopicRecord) -> None:
        def step(image: ClusterImage) -> None:
            if topic.name in image.topics:
                raise TopicExistsError(topic.name)
            image.topics[topic.name] = copy.deepcopy(topic)

        await self._change(step)

    async def get_topic(self, name: str) -> TopicRecord | None:
        assert self._image is not None
        topic = self._image.topics.get(name)
        return None if topic is None else copy.deepcopy(topic)

    async def update_topic(self, topic: TopicRecord) -> None:
        def step(image: ClusterImage) -> None:
            image.topics[topic.name] = copy.deepcopy(topic)

        await self._change(step)

    async def delete_topic(self, name: str) -> None:
        await self._change(lambda image: image.topics.pop(name, None))

    async def allocate_producer_ids(self, count: int) -> int:
        def step(image: ClusterImage) -> int:
            first = image.next_producer_id
            image.next_producer_id = first + count
            return first

        return await self._change(step)

    async def set_scram_credentials(self, user: str, mechanisms: dict[str, dict[str, Any]]) -> None:
        async with self._lock:
            saved = dict(self._scram)
            if mechanisms:
                self._scram[user] = dict(mechanisms)
            else:
                self._scram.pop(user, None)
            try:
                await self._save()
            except BaseException:
                self._scram = saved
                raise

    async def set_broker_configs(self, scope: str, configs: dict[str, str]) -> None:
        def step(image: ClusterImage) -> None:
            image.broker_configs[scope] = dict(configs)

        await self._change(step)

    async def update_security(self, kind: str, changes: dict[str, str | None]) -> None:
        await self._change(lambda image: apply_security(image.security, kind, changes))
