"""DescribeTopicPartitions (key 75): topics and partitions a page at a time (KIP-966).

As Kafka's DescribeTopicPartitionsRequestHandler: the topics asked for (every topic
when the list is empty) are taken in name order, from the cursor's topic on; each is
answered with its partitions from the cursor's partition (0 for the topics after it)
until ``response_partition_limit`` partitions -- at most
``max.request.partition.size.limit``, at least 1 -- have been answered. An answer that
stops inside a topic carries a ``next_cursor`` naming the next partition; one that
stops at a topic boundary names the next topic, partition 0. The client sends the same
request again with that cursor.

* A topic named in the request that does not exist is UNKNOWN_TOPIC_OR_PARTITION
  (INVALID_TOPIC_EXCEPTION for an illegal name), with a zero topic id; nothing is
  auto-created. When every topic is asked for, only existing topics are listed.
* A topic the principal may not DESCRIBE is TOPIC_AUTHORIZATION_FAILED with a zero id
  when named, and silently left out when every topic is asked for; refused topics are
  answered after the page, outside the limit.
* A cursor whose topic is not among the requested topics, or whose partition is
  negative, makes the whole request INVALID_REQUEST (every named topic carries it).
* A partition without a live leader answers leader -1 and no error; eligible leader
  replicas (KIP-966's ELR) are empty lists, since Moldau's controller keeps none.
"""

from __future__ import annotations

from typing import Any

from moldau.controller.controller import INTERNAL_TOPICS, validate_topic_name
from moldau.handlers.authorize import DESCRIBE, TOPIC, allowed, authorized_operations
from moldau.handlers.pacing import paced
from moldau.handlers.registry import codec_for, handles, listener_of
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS
from moldau.protocol.schema import ZERO_UUID

DESCRIBE_TOPIC_PARTITIONS = ALL_APIS[75]
_codec = codec_for(DESCRIBE_TOPIC_PARTITIONS)
_Response = _codec.Response
_Topic = _Response.of("topics")
_Partition = _Topic.of("partitions")
_Cursor = _Response.of("next_cursor")


def _invalid(request: Any) -> Any:
    topics = [
        _Topic(error_code=int(ErrorCode.INVALID_REQUEST), name=t.name, topic_id=ZERO_UUID, is_internal=False, partitions=[])
        for t in request.topics
    ]
    return _Response(throttle_time_ms=0, topics=topics)


def _missing(name: str) -> Any:
    try:
        validate_topic_name(name)
        code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    except KafkaError:
        code = ErrorCode.INVALID_TOPIC_EXCEPTION
    return _Topic(error_code=int(code), name=name, topic_id=ZERO_UUID, is_internal=name in INTERNAL_TOPICS, partitions=[])


def _partitions(broker: Any, topic: Any, start: int, limit: int, live: set[int]) -> tuple[list[Any], int]:
    """Partitions ``start``.. of ``topic``, at most ``limit``; and the next index (-1: none)."""
    count = len(topic.partitions)
    upper = min(count, start + limit)
    answers = []
    for index in range(start, upper):
        state = topic.partitions.get(index)
        if state is None:
            continue
        answers.append(_Partition(
            error_code=0,
            partition_index=index,
            leader_id=state.leader if state.leader in live else -1,
            leader_epoch=state.leader_epoch,
            replica_nodes=list(state.replicas),
            isr_nodes=list(state.isr),
            eligible_leader_replicas=[],
            last_known_elr=[],
            offline_replicas=[r for r in state.replicas if r not in live],
        ))
    return answers, (upper if upper < count else -1)


@handles(DESCRIBE_TOPIC_PARTITIONS, 0, 0)
async def describe_topic_partitions(broker: Any, header: Any, request: Any) -> Any:
    cursor = request.cursor
    start_name = cursor.topic_name if cursor is not None else ""
    every_topic = not request.topics
    if every_topic:
        names = {n for n in broker.topics if n >= start_name}
    else:
        names = {t.name for t in request.topics if t.name >= start_name}
        if cursor is not None and cursor.topic_name not in names:
            return _invalid(request)
    if cursor is not None and cursor.partition_index < 0:
        return _invalid(request)
    limit = max(min(broker.config.int("max.request.partition.size.limit"), request.response_partition_limit), 1)
    live = {b.broker_id for b in broker.live_brokers(listener_of(header))}
    if not broker.store.session.valid():
        live.discard(broker.node_id)  # fenced: as Metadata answers
    topics: list[Any] = []
    refused: list[Any] = []
    next_cursor = None
    remaining = limit
    async for name in paced(sorted(names)):
        if broker.authorizer is not None and not allowed(broker, header, DESCRIBE, TOPIC, name):
            if not every_topic:
                refused.append(_Topic(error_code=int(ErrorCode.TOPIC_AUTHORIZATION_FAILED), name=name,
                                      topic_id=ZERO_UUID, is_internal=False, partitions=[]))
            continue
        if remaining <= 0:
            # the page is full at a topic boundary: go on from this topic's start
            next_cursor = _Cursor(topic_name=name, partition_index=0)
            break
        topic = broker.topics.get(name)
        if topic is None:
            if not every_topic:
                topics.append(_missing(name))
            continue
        start = cursor.partition_index if cursor is not None and name == start_name else 0
        partitions, next_index = _partitions(broker, topic, start, remaining, live)
        topics.append(_Topic(
            error_code=0, name=name, topic_id=topic.topic_id, is_internal=name in INTERNAL_TOPICS,
            partitions=partitions, topic_authorized_operations=authorized_operations(broker, header, TOPIC, name),
        ))
        if next_index != -1:
            next_cursor = _Cursor(topic_name=name, partition_index=next_index)
            break
        remaining -= len(partitions)
    return _Response(throttle_time_ms=0, topics=topics + refused, next_cursor=next_cursor)
