"""AlterPartitionReassignments (45), ListPartitionReassignments (46) and ElectLeaders (43).

Kafka serves these on the controller, and so does Moldau: a broker that is not the
controller forwards AlterPartitionReassignments and ElectLeaders to it
(:mod:`moldau.handlers.forwarding`), which writes each partition's new state with
compare-and-swap (:mod:`moldau.controller.operations`) and drives a reassignment to its
end. ListPartitionReassignments is a read, answered from the local image. Each partition succeeds or
fails on its own with Kafka's error; a request naming more partitions than Kafka's
``MAX_RECORDS_PER_USER_OP`` is refused whole, as Kafka's bounded record list refuses it.
"""

from __future__ import annotations

import logging
from typing import Any

from moldau.controller.controller import EXCESSIVE_BATCH_MESSAGE, MAX_RECORDS_PER_USER_OP
from moldau.controller.operations import PREFERRED, alter_reassignment, elect_leader
from moldau.handlers import authorize as authz
from moldau.handlers.forwarding import forward_or_refuse
from moldau.handlers.pacing import paced
from moldau.handlers.registry import codec_for, handles, item_error
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

log = logging.getLogger(__name__)

ELECT_LEADERS = ALL_APIS[43]
ALTER_PARTITION_REASSIGNMENTS = ALL_APIS[45]
LIST_PARTITION_REASSIGNMENTS = ALL_APIS[46]
_alter = codec_for(ALTER_PARTITION_REASSIGNMENTS)
_AlterTopic = _alter.Response.of("responses")
_AlterPartition = _AlterTopic.of("partitions")
_list = codec_for(LIST_PARTITION_REASSIGNMENTS)
_ListTopic = _list.Response.of("topics")
_ListPartition = _ListTopic.of("partitions")
_elect = codec_for(ELECT_LEADERS)
_ElectTopic = _elect.Response.of("replica_election_results")
_ElectPartition = _ElectTopic.of("partition_result")


@handles(ALTER_PARTITION_REASSIGNMENTS, 0, 1)
async def alter_partition_reassignments(broker: Any, header: Any, request: Any) -> Any:
    allow_rf_change = header.api_version < 1 or request.allow_replication_factor_change

    def refuse(code: ErrorCode, message: str) -> Any:
        return _alter.Response(
            throttle_time_ms=0, allow_replication_factor_change=allow_rf_change,
            error_code=int(code), error_message=message, responses=[],
        )

    forwarded = await forward_or_refuse(broker, header, request, refuse, request.timeout_ms)
    if forwarded is not None:
        return forwarded
    entries = sum(len(t.partitions) for t in request.topics)
    if authz.cluster_error(broker, header, authz.ALTER) is not None:
        return _alter.Response(throttle_time_ms=0, allow_replication_factor_change=allow_rf_change,
                               error_code=int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED), responses=[])
    if entries > MAX_RECORDS_PER_USER_OP:
        return _alter.Response(
            throttle_time_ms=0, allow_replication_factor_change=allow_rf_change,
            error_code=int(ErrorCode.POLICY_VIOLATION), error_message=EXCESSIVE_BATCH_MESSAGE, responses=[],
        )
    responses = []
    async for topic in paced(request.topics):
        partitions = []
        for p in topic.partitions:
            answer = _AlterPartition(partition_index=p.partition_index, error_code=0, error_message=None)
            try:
                replicas = None if p.replicas is None else list(p.replicas)
                await alter_reassignment(broker, topic.name, p.partition_index, replicas, allow_rf_change)
            except Exception as raised:
                exc = item_error(raised, log)
                answer.error_code = int(exc.code)
                answer.error_message = exc.message
            partitions.append(answer)
        responses.append(_AlterTopic(name=topic.name, partitions=partitions))
    return _alter.Response(
        throttle_time_ms=0, allow_replication_factor_change=allow_rf_change, error_code=0, error_message=None,
        responses=responses,
    )


@handles(LIST_PARTITION_REASSIGNMENTS, 0, 0)
async def list_partition_reassignments(broker: Any, header: Any, request: Any) -> Any:
    """The partitions with a reassignment in progress, among those asked (all when null);
    unknown topics and partitions are left out, as Kafka does."""
    if authz.cluster_error(broker, header, authz.DESCRIBE) is not None:
        return _list.Response(throttle_time_ms=0, error_code=int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED), topics=[])
    if request.topics is None:
        wanted = [(name, sorted(t.partitions)) for name, t in sorted(broker.topics.items())]
    else:
        wanted = [(t.name, list(t.partition_indexes)) for t in request.topics]
    topics = []
    async for name, indexes in paced(wanted):
        record = broker.topics.get(name)
        if record is None:
            continue
        partitions = []
        for index in indexes:
            state = record.partitions.get(index)
            if state is not None and state.reassigning:
                partitions.append(_ListPartition(
                    partition_index=index, replicas=list(state.replicas),
                    adding_replicas=list(state.adding_replicas), removing_replicas=list(state.removing_replicas),
                ))
        if partitions:
            topics.append(_ListTopic(name=name, partitions=partitions))
    return _list.Response(throttle_time_ms=0, error_code=0, error_message=None, topics=topics)


@handles(ELECT_LEADERS, 0, 2)
async def elect_leaders(broker: Any, header: Any, request: Any) -> Any:
    """Kafka's rules: with null topic_partitions every partition is tried and those that
    needed no election are left out of the answer; named ones are all answered."""
    if authz.cluster_error(broker, header, authz.ALTER) is not None:
        return _elect.Response(throttle_time_ms=0, error_code=int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
                               replica_election_results=[])

    def refuse(code: ErrorCode, message: str) -> Any:
        if header.api_version >= 1 or request.topic_partitions is None:
            return _elect.Response(throttle_time_ms=0, error_code=int(code), replica_election_results=[])
        return _elect.Response(throttle_time_ms=0, error_code=int(code), replica_election_results=[
            _ElectTopic(topic=t.topic, partition_result=[
                _ElectPartition(partition_id=i, error_code=int(code), error_message=message) for i in t.partitions
            ])
            for t in request.topic_partitions
        ])

    forwarded = await forward_or_refuse(broker, header, request, refuse, request.timeout_ms)
    if forwarded is not None:
        return forwarded
    election_type = request.election_type if header.api_version >= 1 else PREFERRED
    everything = request.topic_partitions is None
    if everything:
        wanted = [(name, sorted(t.partitions)) for name, t in sorted(broker.topics.items())]
    else:
        wanted = [(t.topic, list(t.partitions)) for t in request.topic_partitions]
    if sum(len(indexes) for _, indexes in wanted) > MAX_RECORDS_PER_USER_OP:
        return _elect.Response(
            throttle_time_ms=0, error_code=int(ErrorCode.POLICY_VIOLATION), replica_election_results=[]
        )
    results = []
    async for name, indexes in paced(wanted):
        partitions = []
        for index in indexes:
            answer = _ElectPartition(partition_id=index, error_code=0, error_message=None)
            try:
                await elect_leader(broker, name, index, election_type)
            except Exception as raised:
                exc = item_error(raised, log)
                if everything and exc.code == ErrorCode.ELECTION_NOT_NEEDED:
                    continue
                answer.error_code = int(exc.code)
                answer.error_message = exc.message
            partitions.append(answer)
        results.append(_ElectTopic(topic=name, partition_result=partitions))
    return _elect.Response(throttle_time_ms=0, error_code=0, replica_election_results=results)
