"""Committed offsets: OffsetCommit (8), OffsetFetch (9) and OffsetDelete (47).

Glue between the protocol and the group coordinator. OffsetFetch for a group that
never existed answers -1 offsets and no error, and metadata strings come back exactly
as committed -- both are what clients rely on (see shared/COMPATIBILITY.md).
"""

from __future__ import annotations

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

# -- OffsetCommit ------------------------------------------------------------------------

_commit = codec_for(OFFSET_COMMIT)
_CommitTopic = _commit.Response.of("topics")
_CommitPartition = _CommitTopic.of("partitions")


@handles(OFFSET_COMMIT, 2, 9)
async def offset_commit(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    coordinator = broker.group_coordinator
    commits = [
        OffsetCommit(
            t.name,
            p.partition_index,
            p.committed_offset,
            p.committed_leader_epoch if version >= 6 else -1,
            p.committed_metadata,
        )
        for t in request.topics
        for p in t.partitions
    ]
    try:
        await coordinator.ready(request.group_id)
        errors = coordinator.commit_offsets(
            request.group_id,
            request.generation_id_or_member_epoch,
            request.member_id,
            request.group_instance_id if version >= 7 else None,
            commits,
        )
    except KafkaError as exc:
        errors = [exc.code for _ in commits]
    topics: dict[str, Any] = {}
    for c, code in zip(commits, errors, strict=True):
        topic = topics.get(c.topic)
        if topic is None:
            topic = topics[c.topic] = _CommitTopic(name=c.topic, partitions=[])
        topic.partitions.append(_CommitPartition(partition_index=c.partition, error_code=int(code)))
    return _commit.Response(throttle_time_ms=0, topics=list(topics.values()))


# -- OffsetFetch -------------------------------------------------------------------------

_fetch = codec_for(OFFSET_FETCH)
_FetchTopic = _fetch.Response.of("topics")
_FetchPartition = _FetchTopic.of("partitions")
_FetchGroup = _fetch.Response.of("groups")
_FetchGroupTopic = _FetchGroup.of("topics")
_FetchGroupPartition = _FetchGroupTopic.of("partitions")


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


@handles(OFFSET_FETCH, 1, 9)
async def offset_fetch(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    coordinator = broker.group_coordinator
    await coordinator.ensure_topic()
    if version >= 8:
        groups = []
        for g in request.groups:
            wanted = None if g.topics is None else [(t.name, list(t.partition_indexes)) for t in g.topics]
            member = (g.member_id, g.member_epoch) if version >= 9 and g.member_id is not None else None
            code, topics = _fetch_group(broker, g.group_id, wanted, member)
            groups.append(
                _FetchGroup(
                    group_id=g.group_id,
                    error_code=int(code),
                    topics=[
                        _FetchGroupTopic(
                            name=t,
                            partitions=[
                                _FetchGroupPartition(
                                    partition_index=p, committed_offset=o, committed_leader_epoch=e,
                                    metadata=m, error_code=int(err),
                                )
                                for p, o, e, m, err in rows
                            ],
                        )
                        for t, rows in topics
                    ],
                )
            )
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
