"""Classic group APIs: FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup
(13), SyncGroup (14), DescribeGroups (15), ListGroups (16) and DeleteGroups (42).

Glue only: requests are turned into calls on the broker's
:class:`~moldau.coordinator.group.GroupCoordinator` and its answers into responses.
Every group request first makes sure ``__consumer_offsets`` exists and that this
broker may serve the group now (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS).
"""

from __future__ import annotations

from typing import Any

from moldau.coordinator.group.classic import ClassicGroup, GroupState
from moldau.coordinator.group.coordinator import OFFSETS_TOPIC
from moldau.coordinator.transaction import TXN_TOPIC
from moldau.handlers import authorize as authz
from moldau.handlers.pacing import paced, paced_map
from moldau.handlers.registry import codec_for, handles, listener_of
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

FIND_COORDINATOR = ALL_APIS[10]
JOIN_GROUP = ALL_APIS[11]
HEARTBEAT = ALL_APIS[12]
LEAVE_GROUP = ALL_APIS[13]
SYNC_GROUP = ALL_APIS[14]
DESCRIBE_GROUPS = ALL_APIS[15]
LIST_GROUPS = ALL_APIS[16]
DELETE_GROUPS = ALL_APIS[42]

GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1
#: KIP-932: the share coordinator of "group:topicId:partition" (brokers only)
SHARE_KEY_TYPE = 2
# DescribeGroups' "not asked" value for authorized operations (Integer.MIN_VALUE).
NO_AUTHORIZED_OPERATIONS = -(2**31)


def client_host(header: Any) -> str:
    """Kafka reports a member's address as ``/ip`` (Java's InetAddress.toString)."""
    peer = getattr(header.connection, "peer", "?")
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return f"/{host}"


def _message(code: ErrorCode) -> str | None:
    return None if code is ErrorCode.NONE else code.name


# -- FindCoordinator --------------------------------------------------------------------

_find = codec_for(FIND_COORDINATOR)
_Coordinator = _find.Response.of("coordinators")


def _own_endpoint(broker: Any, listener: str | None) -> tuple[str, int]:
    endpoint_for = getattr(broker, "endpoint_for", None)
    if endpoint_for is None:
        return broker.advertise.host, broker.advertise.port
    return endpoint_for(listener)  # type: ignore[no-any-return]


async def _locate(broker: Any, key: str, key_type: int, header: Any = None) -> tuple[ErrorCode, int, str, int]:
    """(error, node id, host, port) of the coordinator of ``key``, with the endpoints of
    the listener the request came in on."""
    listener = listener_of(header) if header is not None else None
    if header is not None and broker.authorizer is not None:
        # Kafka: DESCRIBE on the group, or on the transactional id
        if key_type == GROUP_KEY_TYPE and not authz.allowed(broker, header, authz.DESCRIBE, authz.GROUP, key):
            return ErrorCode.GROUP_AUTHORIZATION_FAILED, -1, "", -1
        if key_type == TRANSACTION_KEY_TYPE and not authz.allowed(
            broker, header, authz.DESCRIBE, authz.TRANSACTIONAL_ID, key
        ):
            return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1, "", -1
        if key_type == SHARE_KEY_TYPE and authz.cluster_error(broker, header, authz.CLUSTER_ACTION) is not None:
            return ErrorCode.CLUSTER_AUTHORIZATION_FAILED, -1, "", -1
    if key_type == TRANSACTION_KEY_TYPE:
        coordinator: Any = broker.transaction_coordinator
        internal = TXN_TOPIC
    elif key_type == GROUP_KEY_TYPE:
        coordinator = broker.group_coordinator
        internal = OFFSETS_TOPIC
    elif key_type == SHARE_KEY_TYPE:
        coordinator = broker.share_state.coordinator_keys
        internal = coordinator.topic
        if coordinator.parse(key) is None:
            return ErrorCode.INVALID_REQUEST, -1, "", -1
    else:
        return ErrorCode.INVALID_REQUEST, -1, "", -1
    if not key:
        return ErrorCode.INVALID_REQUEST, -1, "", -1
    try:
        await coordinator.ensure_topic()
    except KafkaError as exc:
        coordinator.log.warning("cannot create %s: %s", internal, exc)
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, "", -1
    index = coordinator.partition_of(key)
    partition = broker.partition(internal, index)
    if partition is None or not partition.is_leader:
        # In a cluster the leader of the key's partition coordinates it (Kafka's rule).
        topic = broker.topics.get(internal)
        state = None if topic is None else topic.partitions.get(index)
        leader = next((b for b in broker.live_brokers(listener) if state and b.broker_id == state.leader), None)
        if leader is None or leader.broker_id == broker.node_id:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, "", -1
        return ErrorCode.NONE, leader.broker_id, leader.host, leader.port
    return ErrorCode.NONE, broker.node_id, *_own_endpoint(broker, listener)


@handles(FIND_COORDINATOR, 0, 6)
async def find_coordinator(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    if version >= 4:
        coordinators = []
        async for key in paced(request.coordinator_keys):
            code, node, host, port = await _locate(broker, key, request.key_type, header)
            coordinators.append(
                _Coordinator(key=key, node_id=node, host=host, port=port, error_code=int(code), error_message=_message(code))
            )
        return _find.Response(throttle_time_ms=0, coordinators=coordinators)
    key_type = request.key_type if version >= 1 else GROUP_KEY_TYPE
    code, node, host, port = await _locate(broker, request.key, key_type, header)
    return _find.Response(
        throttle_time_ms=0, error_code=int(code), error_message=_message(code), node_id=node, host=host, port=port
    )


def _check_read(broker: Any, header: Any, group_id: str) -> None:
    """Kafka's check for the group membership APIs: READ on the group."""
    code = authz.group_error(broker, header, authz.READ, group_id)
    if code is not None:
        raise KafkaError(code)


# -- JoinGroup ---------------------------------------------------------------------------

_join = codec_for(JOIN_GROUP)
_JoinMember = _join.Response.of("members")


def _join_error(version: int, code: ErrorCode, member_id: str = "") -> Any:
    return _join.Response(
        throttle_time_ms=0,
        error_code=int(code),
        generation_id=-1,
        protocol_name=None if version >= 7 else "",
        leader="",
        member_id=member_id,
        members=[],
    )


@handles(JOIN_GROUP, 0, 9)
async def join_group(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    coordinator = broker.group_coordinator
    try:
        _check_read(broker, header, request.group_id)
        await coordinator.ready(request.group_id)
    except KafkaError as exc:
        return _join_error(version, exc.code, request.member_id)
    result = await coordinator.classic.join(
        request.group_id,
        request.member_id,
        request.group_instance_id if version >= 5 else None,
        header.client_id or "",
        client_host(header),
        request.session_timeout_ms,
        request.rebalance_timeout_ms if version >= 1 else -1,
        request.protocol_type,
        [(p.name, bytes(p.metadata)) for p in request.protocols],
        require_known_member_id=version >= 4,
    )
    if result.error is not ErrorCode.NONE:
        return _join_error(version, result.error, result.member_id)
    return _join.Response(
        throttle_time_ms=0,
        error_code=0,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name if version >= 7 else (result.protocol_name or ""),
        leader=result.leader,
        skip_assignment=result.skip_assignment and version >= 9,
        member_id=result.member_id,
        members=[
            _JoinMember(member_id=m, group_instance_id=i, metadata=md) for m, i, md in result.members
        ],
    )


# -- SyncGroup ---------------------------------------------------------------------------

_sync = codec_for(SYNC_GROUP)


@handles(SYNC_GROUP, 0, 5)
async def sync_group(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    coordinator = broker.group_coordinator
    try:
        _check_read(broker, header, request.group_id)
        await coordinator.ready(request.group_id)
    except KafkaError as exc:
        return _sync.Response(throttle_time_ms=0, error_code=int(exc.code), assignment=b"")
    result = await coordinator.classic.sync(
        request.group_id,
        request.member_id,
        request.group_instance_id if version >= 3 else None,
        request.generation_id,
        request.protocol_type if version >= 5 else None,
        request.protocol_name if version >= 5 else None,
        {a.member_id: bytes(a.assignment) for a in request.assignments},
    )
    return _sync.Response(
        throttle_time_ms=0,
        error_code=int(result.error),
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


# -- Heartbeat ---------------------------------------------------------------------------

_heartbeat = codec_for(HEARTBEAT)


@handles(HEARTBEAT, 0, 4)
async def heartbeat(broker: Any, header: Any, request: Any) -> Any:
    coordinator = broker.group_coordinator
    try:
        _check_read(broker, header, request.group_id)
        await coordinator.ready(request.group_id)
        code = coordinator.classic.heartbeat(
            request.group_id,
            request.member_id,
            request.group_instance_id if header.api_version >= 3 else None,
            request.generation_id,
        )
    except KafkaError as exc:
        code = exc.code
    return _heartbeat.Response(throttle_time_ms=0, error_code=int(code))


# -- LeaveGroup --------------------------------------------------------------------------

_leave = codec_for(LEAVE_GROUP)
_LeaveMember = _leave.Response.of("members")


@handles(LEAVE_GROUP, 0, 5)
async def leave_group(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    coordinator = broker.group_coordinator
    leaving = (
        [(m.member_id, m.group_instance_id) for m in request.members]
        if version >= 3
        else [(request.member_id, None)]
    )
    try:
        _check_read(broker, header, request.group_id)
        await coordinator.ready(request.group_id)
        code, errors = coordinator.classic.leave(request.group_id, leaving)
    except KafkaError as exc:
        code, errors = exc.code, [exc.code for _ in leaving]
    if version < 3:
        return _leave.Response(throttle_time_ms=0, error_code=int(code if code is not ErrorCode.NONE else errors[0]))
    return _leave.Response(
        throttle_time_ms=0,
        error_code=int(code),
        members=[
            _LeaveMember(member_id=m, group_instance_id=i, error_code=int(e))
            for (m, i), e in zip(leaving, errors, strict=True)
        ],
    )


# -- DescribeGroups ----------------------------------------------------------------------

_describe = codec_for(DESCRIBE_GROUPS)
_Described = _describe.Response.of("groups")
_DescribedMember = _Described.of("members")


def _describe_one(broker: Any, group_id: str, version: int, header: Any = None, operations: bool = False) -> Any:
    coordinator = broker.group_coordinator
    answer = _Described(
        error_code=0, group_id=group_id, group_state="Dead", protocol_type="", protocol_data="", members=[],
        authorized_operations=NO_AUTHORIZED_OPERATIONS,
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
    if group is None or (isinstance(group, ClassicGroup) and group.state is GroupState.DEAD):
        if version >= 6:
            answer.error_code = int(ErrorCode.GROUP_ID_NOT_FOUND)
            answer.error_message = f"Group {group_id} not found."
        return answer
    if not isinstance(group, ClassicGroup):
        answer = coordinator.consumer.describe_as_classic(group, answer, _DescribedMember)
        if version < 6:  # no error for a missing group before v6: it reads as Dead
            answer.error_code, answer.error_message = 0, None
        return answer
    answer.group_state = group.state.value
    answer.protocol_type = group.protocol_type or ""
    stable = group.state is GroupState.STABLE
    answer.protocol_data = (group.protocol_name or "") if stable else ""
    answer.members = [
        _DescribedMember(
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            client_id=m.client_id,
            client_host=m.client_host,
            member_metadata=m.metadata(group.protocol_name) if stable else b"",
            member_assignment=m.assignment if stable else b"",
        )
        for m in group.members.values()
    ]
    return answer


@handles(DESCRIBE_GROUPS, 0, 6)
async def describe_groups(broker: Any, header: Any, request: Any) -> Any:
    await broker.group_coordinator.ensure_topic()
    operations = header.api_version >= 3 and request.include_authorized_operations
    groups = await paced_map(lambda g: _describe_one(broker, g, header.api_version, header, operations), request.groups)
    return _describe.Response(throttle_time_ms=0, groups=groups)


# -- ListGroups --------------------------------------------------------------------------

_list = codec_for(LIST_GROUPS)
_Listed = _list.Response.of("groups")


@handles(LIST_GROUPS, 0, 5)
def list_groups(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    states = {s.lower() for s in request.states_filter} if version >= 4 else set()
    types = {t.lower() for t in request.types_filter} if version >= 5 else set()
    groups = [
        _Listed(group_id=g, protocol_type=pt, group_state=state, group_type=gt)
        for g, pt, state, gt in broker.group_coordinator.list_groups()
        if (not states or state.lower() in states) and (not types or gt in types)
    ]
    if broker.authorizer is not None and not authz.cluster_allowed(broker, header, authz.DESCRIBE):
        # Kafka: without DESCRIBE on the cluster, only the groups one may describe
        groups = [g for g in groups if authz.allowed(broker, header, authz.DESCRIBE, authz.GROUP, g.group_id)]
    return _list.Response(throttle_time_ms=0, error_code=0, groups=groups)


# -- DeleteGroups ------------------------------------------------------------------------

_delete = codec_for(DELETE_GROUPS)
_Deleted = _delete.Response.of("results")


@handles(DELETE_GROUPS, 0, 2)
async def delete_groups(broker: Any, header: Any, request: Any) -> Any:
    coordinator = broker.group_coordinator
    results = []
    async for group_id in paced(request.groups_names):
        try:
            refused = authz.group_error(broker, header, authz.DELETE, group_id)
            if refused is not None:
                raise KafkaError(refused)
            await coordinator.ready(group_id)
            code = coordinator.delete_group(group_id)
        except KafkaError as exc:
            code = exc.code
        results.append(_Deleted(group_id=group_id, error_code=int(code)))
    return _delete.Response(throttle_time_ms=0, results=results)
