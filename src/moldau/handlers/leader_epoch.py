"""OffsetForLeaderEpoch (key 23): where a leader epoch ends in this leader's log.

A follower asks before it fetches in a new leader epoch and truncates its log to the
answer (see moldau.replication.manager); consumers use it to detect log truncation
(KIP-320). Only the leader answers (NOT_LEADER_OR_FOLLOWER otherwise), after Kafka's
fencing of ``current_leader_epoch``. The answer is (the largest epoch at or below the
one asked that this log knows, the offset where it ended); the latest epoch ends at
the log end.
"""

from __future__ import annotations

import logging
from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles, item_error
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

log = logging.getLogger(__name__)

OFFSET_FOR_LEADER_EPOCH = ALL_APIS[23]
_codec = codec_for(OFFSET_FOR_LEADER_EPOCH)
_Topic = _codec.Response.of("topics")
_Partition = _Topic.of("partitions")


def _answer(broker: Any, topic: str, p: Any, refused: bool = False) -> Any:
    answer = _Partition(partition=p.partition, error_code=0, leader_epoch=-1, end_offset=-1)
    try:
        if refused:
            raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        partition = broker.partition(topic, p.partition)
        if partition is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        partition.check_leader_epoch(p.current_leader_epoch)
        if not partition.is_leader:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        answer.leader_epoch, answer.end_offset = partition.end_offset_for_epoch(p.leader_epoch)
    except Exception as raised:
        exc = item_error(raised, log, "answering OffsetForLeaderEpoch")
        answer.error_code = int(exc.code)
    return answer


@handles(OFFSET_FOR_LEADER_EPOCH, 2, 4)
def offset_for_leader_epoch(broker: Any, header: Any, request: Any) -> Any:
    refused: set[str] = set()
    if broker.authorizer is not None:
        # Kafka: a follower (replica_id >= 0) needs CLUSTER_ACTION, a consumer DESCRIBE on each topic
        if header.api_version >= 3 and request.replica_id >= 0:
            if not authz.cluster_allowed(broker, header, authz.CLUSTER_ACTION):
                refused = {t.topic for t in request.topics}
        else:
            refused = {t.topic for t in request.topics if not authz.allowed(broker, header, authz.DESCRIBE, authz.TOPIC, t.topic)}
    topics = [
        _Topic(topic=t.topic, partitions=[_answer(broker, t.topic, p, t.topic in refused) for p in t.partitions])
        for t in request.topics
    ]
    return _codec.Response(throttle_time_ms=0, topics=topics)
