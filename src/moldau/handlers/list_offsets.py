"""ListOffsets (key 2): earliest, latest, max-timestamp and by-timestamp offset lookups.

A partition named more than once in a request is answered once, with INVALID_REQUEST,
as Kafka's ReplicaManager does (its answers are a map by partition). Large requests are
walked with :func:`~moldau.handlers.pacing.paced`, so other clients are served meanwhile.

Each special timestamp needs the version that introduced it (Kafka's
``timestampMinSupportedVersion``): an older request naming it gets UNSUPPORTED_VERSION
for that partition. Without tiered storage (Moldau has none) the latest tiered offset
(-5, v9, KIP-1005) and the earliest offset pending upload (-6, v11, KIP-1023) are -1
with leader epoch -1, and the earliest local offset (-4) is the log start offset, as
Kafka's UnifiedLog answers for a topic without remote storage. v10's ``timeout_ms``
bounds remote lookups only (KIP-1075), so it changes nothing here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from moldau.handlers.authorize import DESCRIBE, TOPIC, allowed
from moldau.handlers.pacing import paced
from moldau.handlers.registry import codec_for, handles, item_error
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

_logger = logging.getLogger(__name__)

LIST_OFFSETS = ALL_APIS[2]
_codec = codec_for(LIST_OFFSETS)
_Response = _codec.Response
_Topic = _Response.of("topics")
_Partition = _Topic.of("partitions")

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
EARLIEST_PENDING_UPLOAD = -6
#: the first version that may ask for each special timestamp (Kafka's ReplicaManager)
MIN_VERSION = {EARLIEST: 1, LATEST: 1, MAX_TIMESTAMP: 7, EARLIEST_LOCAL: 8, LATEST_TIERED: 9, EARLIEST_PENDING_UPLOAD: 11}


def _lookup(broker: Any, topic: str, p: Any, version: int, isolation_level: int) -> Any:
    answer = _Partition(partition_index=p.partition_index, timestamp=-1, offset=-1, leader_epoch=-1)
    if MIN_VERSION.get(p.timestamp, 0) > version:  # checked first, as Kafka's ReplicaManager
        answer.error_code = int(ErrorCode.UNSUPPORTED_VERSION)
        return answer
    partition = broker.partition(topic, p.partition_index)
    try:
        if partition is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if version >= 4:
            partition.check_leader_epoch(p.current_leader_epoch)
        if not partition.is_leader:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    except Exception as raised:
        exc = item_error(raised, _logger)
        answer.error_code = int(exc.code)
        return answer
    log = partition.log
    ts = p.timestamp
    answer.leader_epoch = partition.leader_epoch
    # read_committed (1) sees up to the last stable offset, as Kafka's fetchOffsetForTimestamp
    bound = partition.last_stable_offset if isolation_level == 1 else partition.high_watermark
    if ts == LATEST:
        answer.offset = bound
    elif ts in (EARLIEST, EARLIEST_LOCAL):
        answer.offset = log.log_start_offset
    elif ts in (LATEST_TIERED, EARLIEST_PENDING_UPLOAD):
        answer.offset = answer.leader_epoch = -1
    elif ts == MAX_TIMESTAMP:
        largest = max((s.largest_timestamp for s in log.segments), default=-1)
        found = log.offset_for_timestamp(largest) if largest >= 0 else None
        if found is not None and found[0] < bound:
            answer.offset, answer.timestamp = found
    elif ts < 0:
        answer.error_code = int(ErrorCode.INVALID_REQUEST)
    else:
        found = log.offset_for_timestamp(ts)
        if found is not None and found[0] < bound:
            answer.offset, answer.timestamp = found
    if version == 0:
        answer.old_style_offsets = [answer.offset] if answer.offset >= 0 else []
    return answer


@handles(LIST_OFFSETS, 1, 11)
async def list_offsets(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    isolation = request.isolation_level if version >= 2 else 0

    def asked() -> Iterator[tuple[str, Any]]:
        for topic in request.topics:
            for p in topic.partitions:
                yield topic.name, p

    times: dict[tuple[str, int], int] = {}
    async for name, p in paced(asked()):
        key = (name, p.partition_index)
        times[key] = times.get(key, 0) + 1
    answers: dict[str, dict[int, Any]] = {}
    refused: set[str] = set()
    if broker.authorizer is not None:  # Kafka: DESCRIBE on each topic
        refused = {t.name for t in request.topics if not allowed(broker, header, DESCRIBE, TOPIC, t.name)}
    async for name, p in paced(asked()):
        by_index = answers.setdefault(name, {})
        if p.partition_index in by_index:
            continue
        if name in refused:
            by_index[p.partition_index] = _Partition(
                partition_index=p.partition_index, error_code=int(ErrorCode.TOPIC_AUTHORIZATION_FAILED),
                timestamp=-1, offset=-1, leader_epoch=-1,
            )
        elif times[(name, p.partition_index)] > 1:
            by_index[p.partition_index] = _Partition(
                partition_index=p.partition_index, error_code=int(ErrorCode.INVALID_REQUEST),
                timestamp=-1, offset=-1, leader_epoch=-1,
            )
        else:
            by_index[p.partition_index] = _lookup(broker, name, p, version, isolation)
    topics = [_Topic(name=name, partitions=list(by_index.values())) for name, by_index in answers.items()]
    return _Response(throttle_time_ms=0, topics=topics)
