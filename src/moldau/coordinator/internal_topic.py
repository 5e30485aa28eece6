"""Creating a coordinator's internal topic (``__consumer_offsets``,
``__transaction_state``) on first use.

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
from typing import TYPE_CHECKING

from moldau.protocol.errors import ErrorCode, KafkaError

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
