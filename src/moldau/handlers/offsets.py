"""Committed offsets: OffsetCommit (8), OffsetFetch (9) and OffsetDelete (47).

Glue between the protocol and the group coordinator. OffsetFetch for a group that
never existed answers -1 offsets and no error, and metadata strings come back exactly
as committed -- both are what clients rely on (see shared/COMPATIBILITY.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from moldau.coordinator.group import OffsetCommit
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

OFFSET_COMMIT = ALL_APIS[8]
OFFSET_FETCH = ALL_APIS[9]
OFFSET_DELETE = ALL_APIS[47]

NO_OFFSET = -1
NO_METADATA = ""
_ZERO_UUID = uuid.UUID(int=0)

# -- OffsetCommit ------------------------------------------------------------------------

_commit = codec_for(OFFSET_COMMIT)
_CommitTopic = _commit.Response.of("topics")
_CommitPartition = _CommitTopic.of("partitions")


@handles(OFFSET_COMMIT, 2, 10)
async def offset_commit(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    coordinator = broker.group_coordinator
    # v10 names topics by id (KIP-848 clients); offsets are kept by name, as in Kafka.
    names: dict[Any, str | None] = {}
    if version >= 10:
        names = {t.topic_id: broker.topic_names_by_id.get(t.topic_id) for t in request.topics}
    commits = []
    unknown: list[tuple[Any, int]] = []
    for t in request.topics:
        name = names.get(t.topic_id) if version >= 10 else t.name
        for p in t.partitions:
            if name is None:
                unknown.append((t.topic_id, p.partition_index))
                continue
            commits.append(
                OffsetCommit(
                    name, p.partition_index, p.committed_offset,
                    p.committed_leader_epoch if version >= 6 else -1, p.committed_metadata,
                )
            )
    try:
        await coordinator.ready(request.group_id)
        errors = coordinator.commit_offsets(
            request.group_id,
            request.generation_id_or_member_epoch,
            request.member_id,
            request.group_instance_id if version >= 7 else None,
            commits,
        )
        if ErrorCode.NONE in errors:
            replicated = await coordinator.replicated(request.group_id)
            if replicated is not ErrorCode.NONE:
                errors = [replicated if e is ErrorCode.NONE else e for e in errors]
    except KafkaError as exc:
        errors = [exc.code for _ in commits]
    ids = {name: topic_id for topic_id, name in names.items() if name is not None}
    topics: dict[Any, Any] = {}

    def answer(key: Any, name: str, topic_id: Any, partition: int, code: ErrorCode) -> None:
        topic = topics.get(key)
        if topic is None:
            topic = topics[key] = _CommitTopic(name=name, topic_id=topic_id, partitions=[])
        topic.partitions.append(_CommitPartition(partition_index=partition, error_code=int(code)))

    for c, code in zip(commits, errors, strict=True):
        answer(c.topic, c.topic, ids.get(c.topic), c.partition, code)
    for topic_id, partition in unknown:
        answer(topic_id, "", topic_id, partition, ErrorCode.UNKNOWN_TOPIC_ID)
    for topic in topics.values():
        if topic.topic_id is None:
            topic.topic_id = _ZERO_UUID
    return _commit.Response(throttle_time_ms=0, topics=list(topics.values()))


# -- OffsetFetch -------------------------------------------------------------------------

_fetch = codec_for(OFFSET_FETCH)
_FetchTopic = _fetch.Response.of("topics")
_FetchPartition = _FetchTopic.of("partitions")
_FetchGroup = _fetch.Response.of("groups")
_FetchGroupTopic = _FetchGroup.of("topics")
_FetchGroupPartition = _FetchGroupTopic.of("partitions")


def _topic_id(broker: Any, name: str) -> uuid.UUID:
    topic = broker.topics.get(name)
    return topic.topic_id if topic is not None else _ZERO_UUID


def _fetch_group(
    broker: Any, group_id: str, topics: list[tuple[str, list[int]]] | None, member: tuple[str, int] | None
) -> tuple[ErrorCode, list[tuple[str, list[tuple[int, int, int, str | None, ErrorCode]]]]]:
    """(group error, [(topic, [(partition, offset, leader epoch, metadata, error)])])."""
    coordinator = broker.group_coordinator
    try:
        coordinator.check_coordinator(group_id)
        if member is not None:
            coordinator.consumer.validate_offset_fetch(group_id, *member)
    except KafkaError as exc:
        if topics is None:
            return exc.code, []
        return exc.code, [(t, [(p, NO_OFFSET, -1, NO_METADATA, exc.code) for p in parts]) for t, parts in topics]
    result = []
    for topic, partitions in coordinator.fetch_offsets(group_id, topics):
        rows = []
        for p, value in partitions:
            if value is None:
                rows.append((p, NO_OFFSET, -1, NO_METADATA, ErrorCode.NONE))
            else:
                rows.append((p, value.offset, value.leader_epoch, value.metadata, ErrorCode.NONE))
        result.append((topic, rows))
    return ErrorCode.NONE, result


@handles(OFFSET_FETCH, 1, 10)
async def offset_fetch(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    coordinator = broker.group_coordinator
    await coordinator.ensure_topic()
    if version >= 8:
        groups = []
        for g in request.groups:
            unknown: list[tuple[Any, list[int]]] = []
            if g.topics is None:
                wanted = None
            elif version >= 10:
                # v10 names topics by id; an id we do not know is answered per partition.
                wanted = []
                for t in g.topics:
                    name = broker.topic_names_by_id.get(t.topic_id)
                    if name is None:
                        unknown.append((t.topic_id, list(t.partition_indexes)))
                    else:
                        wanted.append((name, list(t.partition_indexes)))
            else:
                wanted = [(t.name, list(t.partition_indexes)) for t in g.topics]
            member = (g.member_id, g.member_epoch) if version >= 9 and g.member_id is not None else None
            code, topics = _fetch_group(broker, g.group_id, wanted, member)
            answers = [
                _FetchGroupTopic(
                    name=t,
                    topic_id=_topic_id(broker, t),
                    partitions=[
                        _FetchGroupPartition(
                            partition_index=p, committed_offset=o, committed_leader_epoch=e,
                            metadata=m, error_code=int(err),
                        )
                        for p, o, e, m, err in rows
                    ],
                )
                for t, rows in topics
            ]
            answers += [
                _FetchGroupTopic(
                    name="",
                    topic_id=topic_id,
                    partitions=[
                        _FetchGroupPartition(
                            partition_index=p, committed_offset=NO_OFFSET, committed_leader_epoch=-1,
                            metadata=NO_METADATA, error_code=int(ErrorCode.UNKNOWN_TOPIC_ID),
                        )
                        for p in parts
                    ],
                )
                for topic_id, parts in unknown
            ]
            groups.append(_FetchGroup(group_id=g.group_id, error_code=int(code), topics=answers))
        return _fetch.Response(throttle_time_ms=0, groups=groups)
    wanted = None if request.topics is None else [(t.name, list(t.partition_indexes)) for t in request.topics]
    code, topics = _fetch_group(broker, request.group_id, wanted, None)
    response = _fetch.Response(
        throttle_time_ms=0,
        error_code=int(code) if version >= 2 else 0,
        topics=[
            _FetchTopic(
                name=t,
                partitions=[
                    _FetchPartition(
                        partition_index=p, committed_offset=o, committed_leader_epoch=e, metadata=m,
                        error_code=int(err),
                    )
                    for p, o, e, m, err in rows
                ],
            )
            for t, rows in topics
        ],
    )
    return response


# -- OffsetDelete ------------------------------------------------------------------------

_delete = codec_for(OFFSET_DELETE)
_DeleteTopic = _delete.Response.of("topics")
_DeletePartition = _DeleteTopic.of("partitions")


@handles(OFFSET_DELETE, 0, 0)
async def offset_delete(broker: Any, header: Any, request: Any) -> Any:
    coordinator = broker.group_coordinator
    wanted = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    try:
        await coordinator.ready(request.group_id)
        errors = coordinator.delete_offsets(request.group_id, wanted)
    except KafkaError as exc:
        return _delete.Response(error_code=int(exc.code), throttle_time_ms=0, topics=[])
    topics: dict[str, Any] = {}
    for (t, p), code in zip(wanted, errors, strict=True):
        topic = topics.get(t)
        if topic is None:
            topic = topics[t] = _DeleteTopic(name=t, partitions=[])
        topic.partitions.append(_DeletePartition(partition_index=p, error_code=int(code)))
    return _delete.Response(error_code=0, throttle_time_ms=0, topics=list(topics.values()))
