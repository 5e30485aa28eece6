"""Producer id allocation for idempotent producers (InitProducerId without a txn id).

Ids must never repeat in a cluster's lifetime, also across restarts, or a new
producer could be mistaken for an old one and have its batches dropped as duplicates.
Like Kafka's ProducerIdManager we reserve blocks from the metadata store and hand ids
out of the current block in memory; a restart simply wastes the rest of a block.
"""

from __future__ import annotations

import asyncio

from moldau.metastore.store import MetaStore

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, store: MetaStore) -> None:
        self._store = store
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()

    async def generate(self) -> int:
        async with self._lock:
            if self._next >= self._end:
                self._next = await self._store.allocate_producer_ids(BLOCK_SIZE)
                self._end = self._next + BLOCK_SIZE
            producer_id = self._next
            self._next += 1
            return producer_id
