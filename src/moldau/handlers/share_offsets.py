"""KIP-932 admin: DescribeShareGroupOffsets (90), AlterShareGroupOffsets (91) and
DeleteShareGroupOffsets (92).

A share group's "offset" on a partition is its share-partition start offset (SPSO):
the live one where this broker leads the partition and has the share-partition in
memory, else the persisted one (:mod:`moldau.coordinator.share.state`), else -1 (the
group never fetched there). Altering or deleting needs an empty group (NON_EMPTY_GROUP
otherwise, as Kafka): alter resets the share-partition at the new start offset with a
new state epoch; delete writes tombstones, so the next fetch starts afresh at
``share.auto.offset.reset``.
"""

from __future__ import annotations

import uuid
from typing import Any

from moldau.coordinator.share.group import ShareGroup
from moldau.coordinator.share.partition import ACKNOWLEDGED, ARCHIVED
from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

ZERO_UUID = uuid.UUID(int=0)

_describe = codec_for(ALL_APIS[90])
_DGroup = _describe.Response.of("groups")
_DTopic = _DGroup.of("topics")
_DPartition = _DTopic.of("partitions")

_alter = codec_for(ALL_APIS[91])
_ATopic = _alter.Response.of("responses")
_APartition = _ATopic.of("partitions")

_delete = codec_for(ALL_APIS[92])
_XTopic = _delete.Response.of("responses")


def start_and_lag(broker: Any, group_id: str, topic: str, index: int, high_watermark: int) -> tuple[int, int]:
    """The share-partition start offset and lag (KIP-1226: records from the SPSO to the
    high watermark not yet acknowledged or archived), -1 and -1 if never initialized."""
    live = broker.share_manager.partitions.get((group_id, topic, index))
    if live is not None:
        start, batches = int(live.start_offset), live.state_batches()
    else:
        stored = broker.share_state.stored(group_id, topic, index)
        if stored is None:
            return -1, -1
        start, batches = int(stored[0]), stored[2]
    finished = sum(last - first + 1 for first, last, state, _count in batches if state in (ACKNOWLEDGED, ARCHIVED))
    return start, max(high_watermark - start - finished, 0)


async def _check_group(broker: Any, header: Any, group_id: str, operation: Any) -> ShareGroup | None:
    if not broker.config.bool("group.share.enable"):
        raise KafkaError(ErrorCode.UNSUPPORTED_VERSION, "Share groups are not enabled.")
    refused = authz.group_error(broker, header, operation, group_id)
    if refused is not None:
        raise KafkaError(refused)
    await broker.group_coordinator.ready(group_id)
    await broker.share_state.ready()
    group = broker.group_coordinator.groups.get(group_id)
    if group is not None and not isinstance(group, ShareGroup):
        raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a share group.")
    return group


@handles(ALL_APIS[90], 0, 1)
async def describe_share_group_offsets(broker: Any, header: Any, request: Any) -> Any:
    groups = []
    for g in request.groups:
        answer = _DGroup(group_id=g.group_id, topics=[], error_code=0)
        groups.append(answer)
        try:
            group = await _check_group(broker, header, g.group_id, authz.DESCRIBE)
        except KafkaError as exc:
            answer.error_code, answer.error_message = int(exc.code), exc.message
            continue
        if g.topics is None:
            wanted: dict[str, list[int]] = {}
            for topic, index in broker.share_state.keys_of(g.group_id):
                wanted.setdefault(topic, []).append(index)
            for topic, _p, index in [k for k in broker.share_manager.partitions if k[0] == g.group_id]:
                if index not in wanted.setdefault(topic, []):
                    wanted[topic].append(index)
            if group is None and not wanted:
                answer.error_code = int(ErrorCode.GROUP_ID_NOT_FOUND)
                answer.error_message = f"Group {g.group_id} not found."
                continue
        else:
            wanted = {t.topic_name: list(t.partitions) for t in g.topics}
        for name, partitions in sorted(wanted.items()):
            record = broker.topics.get(name)
            refused = broker.authorizer is not None and not authz.allowed(broker, header, authz.DESCRIBE, authz.TOPIC, name)
            topic = _DTopic(topic_name=name, topic_id=record.topic_id if record is not None else ZERO_UUID, partitions=[])
            for index in sorted(partitions):
                p = _DPartition(partition_index=index, start_offset=-1, leader_epoch=-1, error_code=0)
                if refused:
                    p.error_code = int(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                elif record is None or index not in record.partitions:
                    p.error_code = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                else:
                    partition = broker.partition(name, index)
                    hw = partition.high_watermark if partition is not None else -1
                    p.start_offset, p.lag = start_and_lag(broker, g.group_id, name, index, hw)
                    if p.start_offset < 0 and (g.group_id, name, index) not in broker.share_manager.partitions:
                        try:  # the state may be coordinated by another broker
                            remote = await broker.share_state.remote_summary(g.group_id, name, index)
                        except KafkaError as exc:
                            p.error_code, p.error_message = int(exc.code), exc.message
                            remote = None
                        if remote is not None and remote[0] >= 0:
                            p.start_offset = remote[0]
                            p.lag = max(hw - remote[0] - max(remote[1], 0), 0) if hw >= 0 else -1
                    p.leader_epoch = record.partitions[index].leader_epoch
                topic.partitions.append(p)
            answer.topics.append(topic)
    return _describe.Response(throttle_time_ms=0, groups=groups)


def _refuse_alter(request: Any, code: ErrorCode, message: str | None) -> Any:
    return _alter.Response(throttle_time_ms=0, error_code=int(code), error_message=message, responses=[
        _ATopic(topic_name=t.topic_name, topic_id=ZERO_UUID, partitions=[
            _APartition(partition_index=p.partition_index, error_code=int(code), error_message=message)
            for p in t.partitions
        ])
        for t in request.topics
    ])


@handles(ALL_APIS[91], 0, 0)
async def alter_share_group_offsets(broker: Any, header: Any, request: Any) -> Any:
    try:
        group = await _check_group(broker, header, request.group_id, authz.READ)
        if group is not None and not group.is_empty:
            raise KafkaError(ErrorCode.NON_EMPTY_GROUP, f"Share group {request.group_id} is not empty.")
    except KafkaError as exc:
        return _refuse_alter(request, exc.code, exc.message)
    if group is None:
        broker.group_coordinator.share.group(request.group_id, create=True)
    manager = broker.share_manager
    responses = []
    for t in request.topics:
        record = broker.topics.get(t.topic_name)
        topic = _ATopic(topic_name=t.topic_name, topic_id=record.topic_id if record is not None else ZERO_UUID,
                        partitions=[])
        responses.append(topic)
        refused = broker.authorizer is not None and not authz.allowed(broker, header, authz.READ, authz.TOPIC, t.topic_name)
        for p in t.partitions:
            answer = _APartition(partition_index=p.partition_index, error_code=0)
            topic.partitions.append(answer)
            partition = broker.partition(t.topic_name, p.partition_index) if record is not None else None
            if refused:
                answer.error_code = int(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            elif partition is None or not partition.is_leader:
                answer.error_code = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if partition is None
                                        else ErrorCode.NOT_LEADER_OR_FOLLOWER)
            elif p.start_offset < -1:
                answer.error_code = int(ErrorCode.INVALID_REQUEST)
            else:
                offset = p.start_offset if p.start_offset >= 0 else partition.high_watermark
                offset = max(min(offset, partition.high_watermark), partition.log.log_start_offset)
                sp = manager.share_partition(request.group_id, t.topic_name, p.partition_index, partition)
                sp.reset(offset)
                manager.changed((request.group_id, t.topic_name, p.partition_index), sp)
    await broker.share_state.persist()
    return _alter.Response(throttle_time_ms=0, error_code=0, responses=responses)


@handles(ALL_APIS[92], 0, 0)
async def delete_share_group_offsets(broker: Any, header: Any, request: Any) -> Any:
    try:
        group = await _check_group(broker, header, request.group_id, authz.DELETE)
        if group is not None and not group.is_empty:
            raise KafkaError(ErrorCode.NON_EMPTY_GROUP, f"Share group {request.group_id} is not empty.")
        if group is None and not broker.share_state.keys_of(request.group_id):
            raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {request.group_id} not found.")
    except KafkaError as exc:
        return _delete.Response(throttle_time_ms=0, error_code=int(exc.code), error_message=exc.message, responses=[])
    responses = []
    for t in request.topics:
        record = broker.topics.get(t.topic_name)
        topic = _XTopic(topic_name=t.topic_name, topic_id=record.topic_id if record is not None else ZERO_UUID,
                        error_code=0)
        responses.append(topic)
        if record is None:
            topic.error_code = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            continue
        keys = [(t.topic_name, i) for i in sorted(record.partitions)]
        broker.share_manager.drop(lambda k, name=t.topic_name: k[0] == request.group_id and k[1] == name)
        broker.share_state.delete(request.group_id, keys)
    return _delete.Response(throttle_time_ms=0, error_code=0, responses=responses)
