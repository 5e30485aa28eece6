"""CreateTopics (19), DeleteTopics (20) and CreatePartitions (37).

Each topic in a request succeeds or fails on its own, with Kafka's error code and a
message; ``validate_only`` runs every check and creates nothing. CreatePartitions
always answers one result per topic asked for, never an empty list.

Before anything is planned, the metadata records the whole request would write are
counted as Kafka's controller counts them (:data:`MAX_RECORDS_PER_USER_OP`); past the
cap every topic is answered POLICY_VIOLATION and nothing is created, so the cost of a
request is bounded whatever partition counts it names.
"""

from __future__ import annotations

import logging
from typing import Any

from moldau.controller.controller import MAX_RECORDS_PER_USER_OP, excessive_batch
from moldau.handlers.authorize import ALTER, CREATE, DELETE, TOPIC, allowed, cluster_allowed
from moldau.handlers.configs import topic_config_entries
from moldau.handlers.forwarding import forward_or_refuse
from moldau.handlers.pacing import paced, paced_map
from moldau.handlers.registry import codec_for, handles, item_error
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

log = logging.getLogger(__name__)

CREATE_TOPICS = ALL_APIS[19]
DELETE_TOPICS = ALL_APIS[20]
CREATE_PARTITIONS = ALL_APIS[37]
_create = codec_for(CREATE_TOPICS)
_CreateResult = _create.Response.of("topics")
_CreateConfig = _CreateResult.of("configs")
_delete = codec_for(DELETE_TOPICS)
_DeleteResult = _delete.Response.of("responses")
_partitions = codec_for(CREATE_PARTITIONS)
_PartitionsResult = _partitions.Response.of("results")


@handles(CREATE_TOPICS, 2, 7)
async def create_topics(broker: Any, header: Any, request: Any) -> Any:
    def refuse(code: ErrorCode, message: str) -> Any:
        return _create.Response(throttle_time_ms=0, topics=[
            _CreateResult(name=t.name, error_code=int(code), error_message=message,
                          num_partitions=-1, replication_factor=-1, configs=None)
            for t in request.topics
        ])

    forwarded = await forward_or_refuse(broker, header, request, refuse, request.timeout_ms)
    if forwarded is not None:
        return forwarded
    version = header.api_version
    validate_only = version >= 1 and request.validate_only
    results = []
    seen: dict[str, int] = {}
    async for t in paced(request.topics):
        seen[t.name] = seen.get(t.name, 0) + 1
    controller = broker.controller
    records = 0
    async for t in paced(request.topics):
        if seen[t.name] == 1:
            records += controller.creation_records(
                t.name, t.num_partitions, len(t.assignments or ()), len(t.configs or ())
            )
    if records > MAX_RECORDS_PER_USER_OP:
        refusal = excessive_batch()
        topics = await paced_map(
            lambda t: _CreateResult(
                name=t.name, error_code=int(refusal.code), error_message=refusal.message,
                num_partitions=-1, replication_factor=-1, configs=None,
            ),
            request.topics,
        )
        return _create.Response(throttle_time_ms=0, topics=topics)
    pending = 0  # partitions validate_only has granted without creating them
    # Kafka: CREATE on the cluster, or else on each topic
    create_all = broker.authorizer is None or cluster_allowed(broker, header, CREATE)
    async for t in paced(request.topics):
        result = _CreateResult(name=t.name, error_code=0, error_message=None)
        results.append(result)
        try:
            if not create_all and not allowed(broker, header, CREATE, TOPIC, t.name):
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            if seen[t.name] > 1:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Create topics request from client contains duplicate topic {t.name}")
            assignments = {a.partition_index: list(a.broker_ids) for a in t.assignments}
            if len(assignments) != len(t.assignments):
                index = next(i for i in assignments if sum(a.partition_index == i for a in t.assignments) > 1)
                raise KafkaError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"Found multiple manual partition assignments for partition {index}",
                )
            if assignments and (t.num_partitions != -1 or t.replication_factor != -1):
                raise KafkaError(
                    ErrorCode.INVALID_REQUEST,
                    "Both numPartitions or replicationFactor and replicasAssignments were set.",
                )
            configs = {c.name: c.value for c in t.configs}
            plan = controller.plan_topic(
                t.name, t.num_partitions, t.replication_factor, configs, assignments, pending
            )
            if validate_only:
                pending += len(plan.partitions)
            else:
                await controller.create_topic(plan, forward=False)
            result.topic_id = plan.topic_id if not validate_only else result.topic_id
            result.num_partitions = len(plan.partitions)
            result.replication_factor = len(next(iter(plan.partitions.values())).replicas)
            if version >= 5:
                result.configs = [
                    _CreateConfig(
                        name=e.name,
                        value=e.value,
                        read_only=e.read_only,
                        config_source=e.config_source,
                        is_sensitive=e.is_sensitive,
                    )
                    for e in topic_config_entries(broker, plan.configs, None, False, False)
                ]
        except Exception as raised:
            exc = item_error(raised, log)
            result.error_code = int(exc.code)
            result.error_message = exc.message
            result.num_partitions = -1
            result.replication_factor = -1
            result.configs = None
    return _create.Response(throttle_time_ms=0, topics=results)


@handles(DELETE_TOPICS, 1, 6)
async def delete_topics(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    if version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(n, None) for n in request.topic_names]

    def refuse(code: ErrorCode, message: str) -> Any:
        results = [_DeleteResult(name=n, error_code=int(code), error_message=message) for n, _ in wanted]
        for result, (_, topic_id) in zip(results, wanted, strict=True):
            if topic_id is not None:
                result.topic_id = topic_id
        return _delete.Response(throttle_time_ms=0, responses=results)

    forwarded = await forward_or_refuse(broker, header, request, refuse, request.timeout_ms)
    if forwarded is not None:
        return forwarded
    results = []
    async for name, topic_id in paced(wanted):
        result = _DeleteResult(name=name, error_code=0)
        results.append(result)
        try:
            if name is None and topic_id is not None:
                name = broker.topic_names_by_id.get(topic_id)
                result.name = name
                if name is None:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID)
            if not allowed(broker, header, DELETE, TOPIC, name):
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            topic = broker.topics.get(name)
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            result.topic_id = topic.topic_id
            await broker.controller.delete_topic(name)
        except Exception as raised:
            exc = item_error(raised, log)
            result.error_code = int(exc.code)
            result.error_message = exc.message
    return _delete.Response(throttle_time_ms=0, responses=results)


@handles(CREATE_PARTITIONS, 0, 3)
async def create_partitions(broker: Any, header: Any, request: Any) -> Any:
    def refuse(code: ErrorCode, message: str) -> Any:
        return _partitions.Response(throttle_time_ms=0, results=[
            _PartitionsResult(name=t.name, error_code=int(code), error_message=message) for t in request.topics
        ])

    forwarded = await forward_or_refuse(broker, header, request, refuse, request.timeout_ms)
    if forwarded is not None:
        return forwarded
    controller = broker.controller
    asked: dict[str, int] = {}
    async for t in paced(request.topics):
        asked[t.name] = t.count
    records = 0
    async for name, count in paced(asked.items()):
        records += controller.partition_records(name, count)
    if records > MAX_RECORDS_PER_USER_OP:
        refusal = excessive_batch()
        results = await paced_map(
            lambda t: _PartitionsResult(name=t.name, error_code=int(refusal.code), error_message=refusal.message),
            request.topics,
        )
        return _partitions.Response(throttle_time_ms=0, results=results)
    results = []
    pending = 0  # partitions validate_only has granted without creating them
    async for t in paced(request.topics):
        result = _PartitionsResult(name=t.name, error_code=0, error_message=None)
        results.append(result)
        try:
            if not allowed(broker, header, ALTER, TOPIC, t.name):
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            assignments = None if t.assignments is None else [list(a.broker_ids) for a in t.assignments]
            plan = controller.plan_partitions(t.name, t.count, assignments, pending)
            if request.validate_only:
                pending += t.count - len(broker.topics[t.name].partitions)
            else:
                await controller.update_topic(plan)
        except Exception as raised:
            exc = item_error(raised, log)
            result.error_code = int(exc.code)
            result.error_message = exc.message
    return _partitions.Response(throttle_time_ms=0, results=results)
