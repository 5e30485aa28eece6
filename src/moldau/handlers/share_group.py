"""KIP-932 share groups: ShareGroupHeartbeat (76) and ShareGroupDescribe (77).

Glue between the protocol and :mod:`moldau.coordinator.share.group`; assignments
travel as topic ids, mapped to names for ShareGroupDescribe.
"""

from __future__ import annotations

from typing import Any

from moldau.coordinator.group.assignors import Assignment
from moldau.coordinator.share.group import ShareGroup
from moldau.handlers import authorize as authz
from moldau.handlers.consumer_group import described_assignment, heartbeat_answer
from moldau.handlers.groups import client_host
from moldau.handlers.pacing import paced_map
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

SHARE_GROUP_HEARTBEAT = ALL_APIS[76]
SHARE_GROUP_DESCRIBE = ALL_APIS[77]
NO_AUTHORIZED_OPERATIONS = -(2**31)

_hb = codec_for(SHARE_GROUP_HEARTBEAT)


def _hb_error(code: ErrorCode, message: str | None = None) -> Any:
    return _hb.Response(throttle_time_ms=0, error_code=int(code), error_message=message, member_epoch=-1,
                        heartbeat_interval_ms=0)


@handles(SHARE_GROUP_HEARTBEAT, 1, 1)
async def share_group_heartbeat(broker: Any, header: Any, request: Any) -> Any:
    coordinator = broker.group_coordinator
    if not broker.config.bool("group.share.enable"):
        return _hb_error(ErrorCode.UNSUPPORTED_VERSION, "Share groups are not enabled.")
    try:
        refused = authz.group_error(broker, header, authz.READ, request.group_id)  # Kafka: READ on the group
        if refused is not None:
            raise KafkaError(refused)
        await coordinator.ready(request.group_id)
    except KafkaError as exc:
        return _hb_error(exc.code)
    result = coordinator.share.heartbeat(
        request.group_id,
        request.member_id,
        request.member_epoch,
        request.rack_id,
        None if request.subscribed_topic_names is None else list(request.subscribed_topic_names),
        header.client_id or "",
        client_host(header),
    )
    if result.error is not ErrorCode.NONE:
        return _hb_error(result.error, result.message)
    return heartbeat_answer(_hb, result)


_desc = codec_for(SHARE_GROUP_DESCRIBE)
_Group = _desc.Response.of("groups")
_Member = _Group.of("members")
_MemberAssignment = _Member.of("assignment")


def _describe_assignment(broker: Any, assignment: Assignment) -> Any:
    return described_assignment(_MemberAssignment, broker, assignment)


def _describe_one(broker: Any, group_id: str, header: Any, operations: bool) -> Any:
    coordinator = broker.group_coordinator
    answer = _Group(
        error_code=0, group_id=group_id, group_state="Dead", group_epoch=-1, assignment_epoch=-1,
        assignor_name="", members=[], authorized_operations=NO_AUTHORIZED_OPERATIONS,
    )
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
    if not isinstance(group, ShareGroup):
        answer.error_code = int(ErrorCode.GROUP_ID_NOT_FOUND)
        answer.error_message = (
            f"Group {group_id} not found." if group is None else f"Group {group_id} is not a share group."
        )
        return answer
    answer.group_state = group.state_name
    answer.group_epoch = group.group_epoch
    answer.assignment_epoch = group.assignment_epoch
    answer.assignor_name = group.assignor_name
    answer.members = [
        _Member(
            member_id=m.member_id,
            rack_id=m.rack_id,
            member_epoch=m.epoch,
            client_id=m.client_id,
            client_host=m.client_host,
            subscribed_topic_names=sorted(m.subscribed_topic_names),
            assignment=_describe_assignment(broker, m.assigned),
        )
        for m in group.members.values()
    ]
    return answer


@handles(SHARE_GROUP_DESCRIBE, 1, 1)
async def share_group_describe(broker: Any, header: Any, request: Any) -> Any:
    await broker.group_coordinator.ensure_topic()
    operations = request.include_authorized_operations
    groups = await paced_map(lambda g: _describe_one(broker, g, header, operations), request.group_ids)
    return _desc.Response(throttle_time_ms=0, groups=groups)
