"""KIP-848 consumer groups: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69).

Glue between the protocol and :mod:`moldau.coordinator.group.consumer`; assignments
travel as topic ids, which the handler maps to names for ConsumerGroupDescribe.
"""

from __future__ import annotations

import uuid
from typing import Any

from moldau.coordinator.group.assignors import Assignment
from moldau.coordinator.group.consumer import ConsumerGroup
from moldau.handlers import authorize as authz
from moldau.handlers.groups import client_host
from moldau.handlers.pacing import paced_map
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

CONSUMER_GROUP_HEARTBEAT = ALL_APIS[68]
CONSUMER_GROUP_DESCRIBE = ALL_APIS[69]
NO_AUTHORIZED_OPERATIONS = -(2**31)
CONSUMER_MEMBER_TYPE = 1
CLASSIC_MEMBER_TYPE = 0  # a classic-protocol member of a consumer group (online migration)

_hb = codec_for(CONSUMER_GROUP_HEARTBEAT)


def _owned(request: Any) -> Assignment | None:
    if request.topic_partitions is None:
        return None
    return {t.topic_id: set(t.partitions) for t in request.topic_partitions if t.partitions}


@handles(CONSUMER_GROUP_HEARTBEAT, 0, 1)
async def consumer_group_heartbeat(broker: Any, header: Any, request: Any) -> Any:
    coordinator = broker.group_coordinator
    try:
        refused = authz.group_error(broker, header, authz.READ, request.group_id)  # Kafka: READ on the group
        if refused is not None:
            raise KafkaError(refused)
        await coordinator.ready(request.group_id)
    except KafkaError as exc:
        return _hb.Response(throttle_time_ms=0, error_code=int(exc.code), member_epoch=-1, heartbeat_interval_ms=0)
    result = coordinator.consumer.heartbeat(
        request.group_id,
        request.member_id,
        request.member_epoch,
        request.instance_id,
        request.rack_id,
        request.rebalance_timeout_ms,
        None if request.subscribed_topic_names is None else list(request.subscribed_topic_names),
        request.subscribed_topic_regex if header.api_version >= 1 else None,
        request.server_assignor,
        _owned(request),
        header.client_id or "",
        client_host(header),
    )
    if result.error is ErrorCode.NONE:
        # as Kafka's coordinator runtime: answered once what the group wrote (and any
        # earlier write on its partition) is in the ISR of __consumer_offsets
        replicated = await coordinator.replicated(request.group_id)
        if replicated is not ErrorCode.NONE:
            return _hb.Response(throttle_time_ms=0, error_code=int(replicated), member_epoch=-1, heartbeat_interval_ms=0)
    if result.error is not ErrorCode.NONE:
        return _hb.Response(
            throttle_time_ms=0, error_code=int(result.error), error_message=result.message,
            member_id=None, member_epoch=-1, heartbeat_interval_ms=0,
        )
    return heartbeat_answer(_hb, result)


def heartbeat_answer(codec: Any, result: Any) -> Any:
    """A successful heartbeat's answer in ``codec`` (ConsumerGroupHeartbeat and
    ShareGroupHeartbeat answer alike): member id, epoch, interval and, when it
    changed, the assignment by topic id."""
    response_assignment = codec.Response.of("assignment")
    assignment = None
    if result.assignment is not None:
        topic = response_assignment.of("topic_partitions")
        assignment = response_assignment(
            topic_partitions=[
                topic(topic_id=t, partitions=sorted(p)) for t, p in sorted(result.assignment.items(), key=str)
            ]
        )
    return codec.Response(
        throttle_time_ms=0,
        error_code=0,
        member_id=result.member_id,
        member_epoch=result.member_epoch,
        heartbeat_interval_ms=result.heartbeat_interval_ms,
        assignment=assignment,
    )


_desc = codec_for(CONSUMER_GROUP_DESCRIBE)
_Group = _desc.Response.of("groups")
_Member = _Group.of("members")
_MemberAssignment = _Member.of("assignment")


def _describe_assignment(broker: Any, assignment: Assignment) -> Any:
    return described_assignment(_MemberAssignment, broker, assignment)


def described_assignment(member_assignment: Any, broker: Any, assignment: Assignment) -> Any:
    """A member's assignment as the Describe APIs of both group types show it: topics by
    id and name, in name order, empty ones left out."""
    names: dict[uuid.UUID, str] = broker.topic_names_by_id
    topic = member_assignment.of("topic_partitions")
    return member_assignment(
        topic_partitions=[
            topic(topic_id=t, topic_name=names.get(t, ""), partitions=sorted(p))
            for t, p in sorted(assignment.items(), key=lambda kv: names.get(kv[0], ""))
            if p
        ]
    )


def _describe_one(broker: Any, group_id: str, header: Any = None, operations: bool = False) -> Any:
    coordinator = broker.group_coordinator
    answer = _Group(
        error_code=0, group_id=group_id, group_state="Dead", group_epoch=-1, assignment_epoch=-1,
        assignor_name="", members=[], authorized_operations=NO_AUTHORIZED_OPERATIONS,
    )
    if header is not None:  # Kafka: DESCRIBE on the group
        refused, answer.authorized_operations = authz.group_describe_access(broker, header, group_id, operations)
        if refused is not None:
            answer.error_code = int(refused)
            return answer
    try:
        coordinator.check_coordinator(group_id)
    except KafkaError as exc:
        answer.error_code = int(exc.code)
        return answer
    group = coordinator.groups.get(group_id)
    if not isinstance(group, ConsumerGroup):
        answer.error_code = int(ErrorCode.GROUP_ID_NOT_FOUND)
        answer.error_message = (
            f"Group {group_id} not found." if group is None else f"Group {group_id} is not a consumer group."
        )
        return answer
    answer.group_state = group.state_name
    answer.group_epoch = group.group_epoch
    answer.assignment_epoch = group.assignment_epoch
    answer.assignor_name = group.assignor_name
    answer.members = [
        _Member(
            member_id=m.member_id,
            instance_id=m.instance_id,
            rack_id=m.rack_id,
            member_epoch=m.epoch,
            client_id=m.client_id,
            client_host=m.client_host,
            subscribed_topic_names=sorted(m.subscribed_topic_names),
            subscribed_topic_regex=m.subscribed_topic_regex,
            assignment=_describe_assignment(broker, m.assigned),
            target_assignment=_describe_assignment(broker, group.target.get(m.member_id, {})),
            member_type=CONSUMER_MEMBER_TYPE if m.classic is None else CLASSIC_MEMBER_TYPE,
        )
        for m in group.members.values()
    ]
    return answer


@handles(CONSUMER_GROUP_DESCRIBE, 0, 1)
async def consumer_group_describe(broker: Any, header: Any, request: Any) -> Any:
    await broker.group_coordinator.ensure_topic()
    operations = request.include_authorized_operations
    groups = await paced_map(lambda g: _describe_one(broker, g, header, operations), request.group_ids)
    return _desc.Response(throttle_time_ms=0, groups=groups)
