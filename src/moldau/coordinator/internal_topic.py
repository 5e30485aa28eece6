"""A coordinator's internal topic (``__consumer_offsets``, ``__transaction_state``):
creating it on first use, and reading a partition of it back at load.

Both coordinators keep their state in an internal topic that does not exist until a
client first needs it. The creation goes through the controller like any topic, runs
once at a time, and is shielded from the request that asked: librdkafka drops its
bootstrap connection as soon as it knows the broker's name, which cancels that
connection's requests, and a creation cut between the metadata store and the broker
would leave the topic half made.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import decode_records, iter_batches

if TYPE_CHECKING:
    from collections.abc import Mapping

    from moldau.metastore.store import TopicRecord
    from moldau.ports import TopicCreator


class InternalTopicCreator:
    """Creates one internal topic, once, for whichever request first needs it.

    ``plan`` builds the topic's record (partitions, replication, configs) when the
    creation starts, so it sees the live brokers of that moment.
    """

    def __init__(
        self,
        name: str,
        topics: Callable[[], Mapping[str, TopicRecord]],
        controller: Callable[[], TopicCreator],
        plan: Callable[[], TopicRecord],
        log: logging.Logger,
    ) -> None:
        self.name = name
        self._topics = topics
        self._controller = controller
        self._plan = plan
        self._log = log
        self._creating: asyncio.Future[None] | None = None

    async def ensure(self) -> None:
        """Return once the topic exists (or raise what keeps it from existing yet)."""
        if self.name in self._topics():
            return
        if self._creating is None or self._creating.done():
            self._creating = asyncio.ensure_future(self._create())
        await asyncio.shield(self._creating)

    async def _create(self) -> None:
        if self.name in self._topics():
            return
        plan = self._plan()
        try:
            await self._controller().create_topic(plan)
        except KafkaError as exc:
            if exc.code is ErrorCode.LEADER_NOT_AVAILABLE:
                # sent to the elected controller, not through yet: clients retry
                raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, exc.message) from None
            # Already there: the controller has applied what the store holds.
            if exc.code is not ErrorCode.TOPIC_ALREADY_EXISTS:
                raise
            return
        self._log.info("created %s with %d partitions", self.name, len(plan.partitions))


#: how much of a partition one read at load takes
READ_CHUNK = 1 << 20


class Unreadable:
    """What a load had to skip in one partition: counts, and the first cause of each kind.

    Bounded on purpose: one warning per partition per load, however much is damaged.
    """

    def __init__(self) -> None:
        self.batches = 0
        self.records = 0
        self.first_batch: str | None = None
        self.first_record: str | None = None

    def batch(self, offset: int, cause: object) -> None:
        self.batches += 1
        if self.first_batch is None:
            self.first_batch = f"batch at offset {offset}: {cause}"

    def record(self, cause: object) -> None:
        self.records += 1
        if self.first_record is None:
            self.first_record = str(cause) or type(cause).__name__

    def __bool__(self) -> bool:
        return bool(self.batches or self.records)

    def __str__(self) -> str:
        parts = []
        if self.batches:
            parts.append(f"{self.batches} batch(es), first {self.first_batch}")
        if self.records:
            parts.append(f"{self.records} record(s), first: {self.first_record}")
        return "; ".join(parts)


#: A record as read back at load: key, value, the producer id of a transactional
#: batch (-1 otherwise), and for a control batch's marker 1 (commit) or 0 (abort), with
#: key and value None; -1 for every other record.
LoggedRecord = tuple[bytes | None, bytes | None, int, int]
NOT_CONTROL = -1


def read_partition(
    log: Any, high_watermark: int, skipped: Unreadable | None = None
) -> list[LoggedRecord]:
    """Every readable record of a ``__consumer_offsets`` (or ``__transaction_state``)
    partition, in order, with what a replay needs of transactions (:data:`LoggedRecord`).

    Runs in a worker thread at load time, when nothing appends to this partition.
    Never gives up on the rest of the partition because of one bad spot: a batch whose
    CRC is wrong or whose records do not parse is skipped whole (its header still says
    where the next batch starts) and counted in ``skipped``. Only damage to the framing
    itself, or a failing read, ends the partition early, keeping what came before.
    """
    skipped = Unreadable() if skipped is None else skipped
    out: list[LoggedRecord] = []
    offset = log.log_start_offset
    while offset < high_watermark:
        try:
            info = log.read(offset, READ_CHUNK, max_offset=high_watermark)
            if info is None or info.slice is None or info.slice.size == 0:
                break
            data = info.slice.read()
        except Exception as exc:
            skipped.batch(offset, f"unreadable log: {exc!r}; the rest of the partition is not loaded")
            break
        last = offset
        try:
            for batch in iter_batches(data, allow_partial_tail=True):
                last = batch.last_offset
                try:
                    if not batch.crc_is_valid():
                        raise ValueError("CRC mismatch")
                    records = decode_records(batch)
                except Exception as exc:
                    skipped.batch(batch.base_offset, repr(exc))
                    continue
                producer_id = batch.producer_id if batch.is_transactional else -1
                for record in records:
                    if record.offset < offset or record.key is None:
                        continue
                    if batch.is_control:
                        # ControlRecordType key: int16 version, int16 type (0 abort, 1 commit)
                        if len(record.key) >= 4 and record.key[2:4] in (b"\x00\x00", b"\x00\x01"):
                            out.append((None, None, producer_id, record.key[3]))
                        continue
                    out.append((record.key, record.value, producer_id, NOT_CONTROL))
        except Exception as exc:  # the framing itself is damaged: nothing to resync on
            skipped.batch(last + 1, f"{exc!r}; the rest of the partition is not loaded")
            break
        if last + 1 <= offset:
            break
        offset = last + 1
    return out
