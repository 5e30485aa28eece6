"""DeleteRecords (key 21): move a partition's log start offset (its low watermark).

Whole segments below the new start are deleted; the start offset itself is written to
the log-start-offset checkpoint before the answer, so a restart never brings the
deleted records back. Internal topics are refused (INVALID_TOPIC_EXCEPTION), as in
Kafka: their records belong to the coordinators.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from moldau.controller.controller import INTERNAL_TOPICS
from moldau.handlers import authorize as authz
from moldau.handlers.pacing import Pacer, paced, paced_map
from moldau.handlers.registry import codec_for, handles, item_error
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

log = logging.getLogger(__name__)

DELETE_RECORDS = ALL_APIS[21]
_codec = codec_for(DELETE_RECORDS)
_Topic = _codec.Response.of("topics")
_Partition = _Topic.of("partitions")
HIGH_WATERMARK = -1


def _delete(broker: Any, topic: str, index: int, offset: int, refused: bool = False) -> Any:
    answer = _Partition(partition_index=index, low_watermark=-1, error_code=0)
    partition = broker.partition(topic, index)
    try:
        if refused:
            raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        if topic in INTERNAL_TOPICS:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot delete records of internal topic {topic}")
        if partition is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if not partition.is_leader:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if offset == HIGH_WATERMARK:
            offset = partition.high_watermark
        if offset < 0 or offset > partition.high_watermark:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE)
        answer.low_watermark = partition.log.delete_records_before(offset)
    except Exception as raised:
        exc = item_error(raised, log)
        answer.error_code = int(exc.code)
    return answer


@handles(DELETE_RECORDS, 0, 2)
async def delete_records(broker: Any, header: Any, request: Any) -> Any:
    topics = []
    pacer = Pacer()
    async for topic in paced(request.topics, pacer):
        refused = not authz.allowed(broker, header, authz.DELETE, authz.TOPIC, topic.name)  # Kafka: DELETE on the topic
        partitions = await paced_map(
            lambda p, name=topic.name, refused=refused: _delete(broker, name, p.partition_index, p.offset, refused),
            topic.partitions, pacer,
        )
        topics.append(_Topic(name=topic.name, partitions=partitions))
    # The start offsets moved above; the checkpoint that makes them durable finishes
    # even if the client hangs up (a broker-owned step), so a restart agrees with them.
    await broker.changes.run(lambda: asyncio.to_thread(broker.log_manager.checkpoint), exclusive=False)
    return _codec.Response(throttle_time_ms=0, topics=topics)
