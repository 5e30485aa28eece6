"""Metadata (key 3): brokers, topics and partition leaders; auto-creation of topics.

A topic a client asks for that does not exist is created with ``num.partitions`` when
``auto.create.topics.enable`` is on and the request allows it (v4+), and answered in
full right away, since creation here completes before the answer.

Each topic is answered once however often it is named, as Kafka does (it reads the
request's topics into a set): a request naming one topic a million times gets a
one-topic answer. Large lists are walked with :func:`~moldau.handlers.pacing.paced`,
so other clients are served meanwhile.
"""

from __future__ import annotations

import logging
from typing import Any

from moldau.controller.controller import INTERNAL_TOPICS, validate_topic_name
from moldau.coordinator.group.coordinator import OFFSETS_TOPIC
from moldau.coordinator.transaction import TXN_TOPIC
from moldau.handlers.authorize import (
    CREATE,
    DESCRIBE,
    OPERATIONS_NOT_REQUESTED,
    TOPIC,
    allowed,
    authorized_operations,
    cluster_allowed,
)
from moldau.handlers.authorize import cluster_operations as cluster_operations_of
from moldau.handlers.pacing import paced
from moldau.handlers.registry import codec_for, handles, listener_of
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

log = logging.getLogger(__name__)

METADATA = ALL_APIS[3]
_codec = codec_for(METADATA)
_Response = _codec.Response
_Broker = _Response.of("brokers")
_Topic = _Response.of("topics")
_Partition = _Topic.of("partitions")


def describe_topic(broker: Any, name: str) -> Any:
    topic = broker.topics[name]
    live = {b.broker_id for b in broker.live_brokers()}
    if not broker.store.session.valid():
        live.discard(broker.node_id)  # fenced: our own leaderships may be gone already
    partitions = []
    for index in sorted(topic.partitions):
        state = topic.partitions[index]
        partitions.append(
            _Partition(
                # Kafka: a partition without a live leader is LEADER_NOT_AVAILABLE
                error_code=0 if state.leader in live else int(ErrorCode.LEADER_NOT_AVAILABLE),
                partition_index=index,
                leader_id=state.leader,
                leader_epoch=state.leader_epoch,
                replica_nodes=list(state.replicas),
                isr_nodes=list(state.isr),
                offline_replicas=[r for r in state.replicas if r not in live],
            )
        )
    return _Topic(
        error_code=0,
        name=name,
        topic_id=topic.topic_id,
        is_internal=name in INTERNAL_TOPICS,
        partitions=partitions,
        topic_authorized_operations=-2147483648,
    )


async def auto_create(broker: Any, name: str) -> None:
    """Create a topic a client asked for, as Kafka's AutoTopicCreationManager does:
    ``__consumer_offsets`` with the group coordinator's own settings
    (``offsets.topic.num.partitions``, compaction), never with ``num.partitions``;
    ``__transaction_state`` likewise with the transaction coordinator's."""
    if name == OFFSETS_TOPIC:
        await broker.group_coordinator.ensure_topic()
        return
    if name == TXN_TOPIC:
        await broker.transaction_coordinator.ensure_topic()
        return
    if name in INTERNAL_TOPICS:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    config = broker.config
    plan = broker.controller.plan_topic(
        name, config.int("num.partitions"), config.int("default.replication.factor"), {}
    )
    await broker.controller.create_topic(plan)
    log.info("auto-created topic %s with %d partition(s)", name, len(plan.partitions))


@handles(METADATA, 0, 13)
async def metadata(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    requested = request.topics
    topics = []
    checked = broker.authorizer is not None
    if requested is None or (version == 0 and not requested):
        names = sorted(broker.topics)
        if checked:  # Kafka lists only the topics the principal may describe
            names = [n for n in names if allowed(broker, header, DESCRIBE, TOPIC, n)]
        topics = [describe_topic(broker, n) async for n in paced(names)]
    else:
        allow_auto = broker.config.bool("auto.create.topics.enable") and (
            version < 4 or request.allow_auto_topic_creation
        )
        distinct: dict[Any, Any] = {}
        async for wanted in paced(requested):
            distinct.setdefault(wanted.name if wanted.name is not None else wanted.topic_id, wanted)
        async for wanted in paced(distinct.values()):
            name = wanted.name
            if name is None and version >= 10:
                name = broker.topic_names_by_id.get(wanted.topic_id)
                if name is None:
                    topics.append(_Topic(error_code=int(ErrorCode.UNKNOWN_TOPIC_ID), name=None, topic_id=wanted.topic_id))
                    continue
            if checked and not allowed(broker, header, DESCRIBE, TOPIC, name):
                topics.append(_Topic(error_code=int(ErrorCode.TOPIC_AUTHORIZATION_FAILED), name=name, is_internal=False))
                continue
            if name not in broker.topics:
                try:
                    validate_topic_name(name)
                    if not allow_auto:
                        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                    if checked and not (
                        cluster_allowed(broker, header, CREATE) or allowed(broker, header, CREATE, TOPIC, name)
                    ):
                        raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                    await auto_create(broker, name)
                except KafkaError as exc:
                    if exc.code == ErrorCode.TOPIC_ALREADY_EXISTS and name in broker.topics:
                        pass
                    else:
                        topics.append(_Topic(error_code=int(exc.code), name=name, is_internal=False))
                        continue
            topics.append(describe_topic(broker, name))
    if version >= 8 and request.include_topic_authorized_operations:
        for topic in topics:
            if topic.error_code in (0, ErrorCode.LEADER_NOT_AVAILABLE) and topic.name is not None:
                topic.topic_authorized_operations = authorized_operations(broker, header, TOPIC, topic.name)
    cluster_operations = OPERATIONS_NOT_REQUESTED
    if 8 <= version <= 10 and request.include_cluster_authorized_operations:
        cluster_operations = cluster_operations_of(broker, header)
    return _Response(
        throttle_time_ms=0,
        error_code=0,  # v13 (KIP-1102): REBOOTSTRAP_REQUIRED is never needed here
        brokers=[_Broker(node_id=b.broker_id, host=b.host, port=b.port, rack=b.rack) for b in broker.live_brokers(listener_of(header))],
        cluster_id=broker.cluster_id,
        controller_id=broker.controller_id(),
        topics=topics,
        cluster_authorized_operations=cluster_operations,
    )
