"""DescribeProducers (key 61): the producers a partition leader knows (KIP-664).

Per partition, from the log's producer state (moldau.storage.txn_state): producer id,
epoch, last sequence, last timestamp, the coordinator epoch of its last transaction
marker and the first offset of its open transaction (-1 without one). Tools use it to
find hanging transactions (``kafka-transactions.sh describe-producers``).
"""

from __future__ import annotations

import logging
from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.pacing import Pacer, paced, paced_map
from moldau.handlers.registry import codec_for, handles, item_error
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

log = logging.getLogger(__name__)

DESCRIBE_PRODUCERS = ALL_APIS[61]
_codec = codec_for(DESCRIBE_PRODUCERS)
_Topic = _codec.Response.of("topics")
_Partition = _Topic.of("partitions")
_Producer = _Partition.of("active_producers")


def _describe(broker: Any, topic: str, index: int, refused: bool = False) -> Any:
    answer = _Partition(partition_index=index, error_code=0, active_producers=[])
    try:
        if refused:
            raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        partition = broker.partition(topic, index)
        if partition is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if not partition.is_leader:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        answer.active_producers = [
            _Producer(
                producer_id=pid,
                producer_epoch=info.epoch,
                last_sequence=info.last_sequence,
                last_timestamp=info.last_timestamp,
                coordinator_epoch=info.coordinator_epoch,
                current_txn_start_offset=info.txn_first_offset,
            )
            for pid, info in partition.log.txn_state.producers.items()
        ]
    except Exception as raised:
        exc = item_error(raised, log)
        answer.error_code = int(exc.code)
        answer.error_message = exc.message
    return answer


@handles(DESCRIBE_PRODUCERS, 0, 0)
async def describe_producers(broker: Any, header: Any, request: Any) -> Any:
    pacer = Pacer()
    topics = []
    async for topic in paced(request.topics, pacer):
        refused = not authz.allowed(broker, header, authz.READ, authz.TOPIC, topic.name)  # Kafka: READ on the topic
        partitions = await paced_map(
            lambda i, name=topic.name, refused=refused: _describe(broker, name, i, refused), topic.partition_indexes,
            pacer,
        )
        topics.append(_Topic(name=topic.name, partitions=partitions))
    return _codec.Response(throttle_time_ms=0, topics=topics)
