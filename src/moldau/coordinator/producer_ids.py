"""Producer id allocation for idempotent producers (InitProducerId without a txn id).

Ids must never repeat in a cluster's lifetime, also across restarts, or a new
producer could be mistaken for an old one and have its batches dropped as duplicates.
Like Kafka's ProducerIdManager we reserve blocks from the metadata store and hand ids
out of the current block in memory; a restart simply wastes the rest of a block.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moldau.ports import ProducerIdBlocks

BLOCK_SIZE = 1000


class ProducerIdManager:
    """Hands out producer ids from blocks reserved in the metadata store.

    A block is reserved by one task that every waiting request shares, shielded from
    their cancellation: a client that hangs up mid-reservation cannot leave the store
    advanced while this manager never learns the block (or reserves twice at once).
    """

    def __init__(self, store: ProducerIdBlocks) -> None:
        self._store = store
        self._next = 0
        self._end = 0
        self._reserving: asyncio.Future[None] | None = None

    async def generate(self) -> int:
        while self._next >= self._end:
            if self._reserving is None:
                self._reserving = asyncio.ensure_future(self._reserve())
            await asyncio.shield(self._reserving)
        producer_id = self._next
        self._next += 1
        return producer_id

    async def _reserve(self) -> None:
        try:
            first = await self._store.allocate_producer_ids(BLOCK_SIZE)
            self._next, self._end = first, first + BLOCK_SIZE
        finally:
            self._reserving = None
