"""Committed offsets: OffsetCommit (8), OffsetFetch (9) and OffsetDelete (47).

Glue between the protocol and the group coordinator. OffsetFetch for a group that
never existed answers -1 offsets and no error, and metadata strings come back exactly
as committed -- both are what clients rely on (see shared/COMPATIBILITY.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from moldau.coordinator.group import OffsetCommit
from moldau.coordinator.group.coordinator import OFFSETS_TOPIC
from moldau.handlers import authorize as authz
from moldau.handlers.pacing import PACE, Pacer, paced, paced_map
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

OFFSET_COMMIT = ALL_APIS[8]
OFFSET_FETCH = ALL_APIS[9]
OFFSET_DELETE = ALL_APIS[47]

#: Lower bounds of what a commit writes (moldau.coordinator.group.records): a batch
#: header; per offset an OffsetCommitKey (version, group, topic, partition) and an
#: OffsetCommitValue v3 (version, offset, leader epoch, metadata, commit timestamp).
_BATCH_OVERHEAD = 61
_OFFSET_KEY_FIXED = 2 + 2 + 2 + 4
_OFFSET_VALUE_FIXED = 2 + 8 + 4 + 2 + 8
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
    pacer = Pacer()
    async for t in paced(request.topics, pacer):
        name = names.get(t.topic_id) if version >= 10 else t.name
        async for p in paced(t.partitions, pacer):
            if name is None:
                unknown.append((t.topic_id, p.partition_index))
                continue
            commits.append(
                OffsetCommit(
                    name, p.partition_index, p.committed_offset,
                    p.committed_leader_epoch if version >= 6 else -1, p.committed_metadata,
                )
            )
    group_refused = None
    refused: list[OffsetCommit] = []
    if broker.authorizer is not None:  # Kafka: READ on the group, then on each topic
        group_refused = authz.group_error(broker, header, authz.READ, request.group_id)
        if group_refused is None:
            readable = {c.topic: authz.allowed(broker, header, authz.READ, authz.TOPIC, c.topic) for c in commits}
            refused = [c for c in commits if not readable[c.topic]]
            commits = [c for c in commits if readable[c.topic]]
    missing: list[OffsetCommit] = []
    if group_refused is None:
        commits, missing = _split_missing(broker, commits)
    try:
        if group_refused is not None:
            raise KafkaError(group_refused)
        errors: list[ErrorCode] = []
        if commits or not (missing or refused or unknown):  # Kafka: nothing left, nothing stored
            await coordinator.ready(request.group_id)
            if await commit_too_large(broker, request.group_id, commits, pacer):
                raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR)
            errors = coordinator.commit_offsets(
                request.group_id,
                request.generation_id_or_member_epoch,
                request.member_id,
                request.group_instance_id if version >= 7 else None,
                commits,
                api_version=version,
            )
            errors = await coordinator.replicated_errors(request.group_id, errors)
    except KafkaError as exc:
        errors = [exc.code for _ in commits]
    ids = {name: topic_id for topic_id, name in names.items() if name is not None}
    topics: dict[Any, Any] = {}

    def answer(key: Any, name: str, topic_id: Any, partition: int, code: ErrorCode) -> None:
        topic = topics.get(key)
        if topic is None:
            topic = topics[key] = _CommitTopic(name=name, topic_id=topic_id, partitions=[])
        topic.partitions.append(_CommitPartition(partition_index=partition, error_code=int(code)))

    async for c, code in paced(zip(commits, errors, strict=True), pacer):
        answer(c.topic, c.topic, ids.get(c.topic), c.partition, code)
    for c in refused:
        answer(c.topic, c.topic, ids.get(c.topic), c.partition, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    for c in missing:
        answer(c.topic, c.topic, ids.get(c.topic), c.partition, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    async for topic_id, partition in paced(unknown, pacer):
        answer(topic_id, "", topic_id, partition, ErrorCode.UNKNOWN_TOPIC_ID)
    for topic in topics.values():
        if topic.topic_id is None:
            topic.topic_id = _ZERO_UUID
    return _commit.Response(throttle_time_ms=0, topics=list(topics.values()))


def _split_missing(broker: Any, commits: list[OffsetCommit]) -> tuple[list[OffsetCommit], list[OffsetCommit]]:
    """(commits to existing partitions, commits to topics or partitions that do not exist).

    Kafka's KafkaApis.handleOffsetCommitRequest answers UNKNOWN_TOPIC_OR_PARTITION for
    a topic the metadata cache does not know and for a partition beyond its count, and
    stores nothing for them (librdkafka's test 0030 and AdminClient's
    AlterConsumerGroupOffsets rely on it).
    """
    known: list[OffsetCommit] = []
    missing: list[OffsetCommit] = []
    topics = broker.topics
    for c in commits:
        topic = topics.get(c.topic)
        (known if topic is not None and c.partition in topic.partitions else missing).append(c)
    return known, missing


async def commit_too_large(broker: Any, group_id: str, commits: list[OffsetCommit], pacer: Pacer) -> bool:
    """Whether the commit's records cannot fit in one batch of ``__consumer_offsets``.

    Kafka writes a commit as one atomic batch and refuses one larger than the offsets
    topic's ``max.message.bytes`` (RecordTooLargeException, answered as
    UNKNOWN_SERVER_ERROR for every partition). That also bounds the synchronous work a
    commit costs here. Sizes are a lower bound (record framing left out), so nothing
    Kafka accepts is refused.
    """
    topic = broker.topics.get(OFFSETS_TOPIC)
    if topic is None:
        return False
    limit = broker.log_config_for(topic).max_message_bytes
    size = _BATCH_OVERHEAD
    fixed = _OFFSET_KEY_FIXED + _OFFSET_VALUE_FIXED + len(group_id.encode())
    topic_sizes: dict[str, int] = {}
    async for c in paced(commits, pacer):
        topic_size = topic_sizes.get(c.topic)
        if topic_size is None:
            topic_size = topic_sizes[c.topic] = len(c.topic.encode())
        size += fixed + topic_size + len((c.metadata or "").encode())
        if size > limit:
            return True
    return False


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


Row = tuple[int, int, int, str | None, ErrorCode]


async def _fetch_authorized(
    broker: Any,
    header: Any,
    group_id: str,
    topics: list[tuple[str, list[int]]] | None,
    member: tuple[str, int] | None,
    pacer: Pacer,
    require_stable: bool = False,
) -> tuple[ErrorCode, list[tuple[str, list[Row]]]]:
    """:func:`_fetch_group` under Kafka's checks: READ on the group (else
    GROUP_AUTHORIZATION_FAILED), and DESCRIBE on each topic: asked-for topics one may not
    describe answer TOPIC_AUTHORIZATION_FAILED, and "all topics" leaves them out."""
    if broker.authorizer is None:
        return await _fetch_group(broker, group_id, topics, member, pacer, require_stable)
    refused = authz.group_error(broker, header, authz.READ, group_id)
    if refused is not None:
        return refused, []
    code, found = await _fetch_group(broker, group_id, topics, member, pacer, require_stable)

    def visible(topic: str) -> bool:
        return authz.allowed(broker, header, authz.DESCRIBE, authz.TOPIC, topic)

    if topics is None:
        return code, [(t, rows) for t, rows in found if visible(t)]
    denied = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    return code, [
        (t, rows if visible(t) else [(r[0], NO_OFFSET, -1, NO_METADATA, denied) for r in rows]) for t, rows in found
    ]


async def _fetch_group(
    broker: Any,
    group_id: str,
    topics: list[tuple[str, list[int]]] | None,
    member: tuple[str, int] | None,
    pacer: Pacer,
    require_stable: bool = False,
) -> tuple[ErrorCode, list[tuple[str, list[Row]]]]:
    """(group error, [(topic, [(partition, offset, leader epoch, metadata, error)])]).

    Asked partitions are looked up :data:`PACE` at a time, with the event loop handed
    back in between, so a request naming a million partitions does not stall others.
    """
    coordinator = broker.group_coordinator
    try:
        coordinator.check_coordinator(group_id)
        if member is not None:
            coordinator.consumer.validate_offset_fetch(group_id, *member)
    except KafkaError as exc:
        if topics is None:
            return exc.code, []
        code = exc.code
        return code, [
            (t, await paced_map(lambda p: (p, NO_OFFSET, -1, NO_METADATA, code), parts, pacer))
            async for t, parts in paced(topics, pacer)
        ]

    pending = coordinator.pending_txn_partitions(group_id) if require_stable else None

    def row(found: tuple[int, Any], topic: str = "") -> Row:
        p, value = found
        if pending and (topic, p) in pending:
            # KIP-447: a transaction's offsets not yet committed or aborted
            return (p, NO_OFFSET, -1, NO_METADATA, ErrorCode.UNSTABLE_OFFSET_COMMIT)
        if value is None:
            return (p, NO_OFFSET, -1, NO_METADATA, ErrorCode.NONE)
        return (p, value.offset, value.leader_epoch, value.metadata, ErrorCode.NONE)

    if topics is None:
        return ErrorCode.NONE, [
            (t, [row(found, t) for found in partitions]) for t, partitions in coordinator.fetch_offsets(group_id, None)
        ]
    result = []
    async for topic, partitions in paced(topics, pacer):
        rows: list[Row] = []
        for start in range(0, len(partitions), PACE):
            chunk = coordinator.fetch_offsets(group_id, [(topic, partitions[start : start + PACE])])
            rows += [row(found, topic) for found in chunk[0][1]]
            await pacer.tick(len(chunk[0][1]))
        result.append((topic, rows))
    return ErrorCode.NONE, result


def _group_partition(row: Row) -> Any:
    p, o, e, m, err = row
    return _FetchGroupPartition(
        partition_index=p, committed_offset=o, committed_leader_epoch=e, metadata=m, error_code=int(err)
    )


def _partition(row: Row) -> Any:
    p, o, e, m, err = row
    return _FetchPartition(
        partition_index=p, committed_offset=o, committed_leader_epoch=e, metadata=m, error_code=int(err)
    )


@handles(OFFSET_FETCH, 1, 10)
async def offset_fetch(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    coordinator = broker.group_coordinator
    await coordinator.ensure_topic()
    pacer = Pacer()
    if version >= 8:
        groups = []
        async for g in paced(request.groups, pacer):
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
            code, topics = await _fetch_authorized(
                broker, header, g.group_id, wanted, member, pacer, request.require_stable)
            answers = [
                _FetchGroupTopic(
                    name=t,
                    topic_id=_topic_id(broker, t),
                    partitions=await paced_map(_group_partition, rows, pacer),
                )
                async for t, rows in paced(topics, pacer)
            ]
            answers += [
                _FetchGroupTopic(
                    name="",
                    topic_id=topic_id,
                    partitions=await paced_map(
                        lambda p: _group_partition((p, NO_OFFSET, -1, NO_METADATA, ErrorCode.UNKNOWN_TOPIC_ID)),
                        parts,
                        pacer,
                    ),
                )
                async for topic_id, parts in paced(unknown, pacer)
            ]
            groups.append(_FetchGroup(group_id=g.group_id, error_code=int(code), topics=answers))
        return _fetch.Response(throttle_time_ms=0, groups=groups)
    wanted = None if request.topics is None else [(t.name, list(t.partition_indexes)) for t in request.topics]
    code, topics = await _fetch_authorized(
        broker, header, request.group_id, wanted, None, pacer, version >= 7 and request.require_stable
    )
    response = _fetch.Response(
        throttle_time_ms=0,
        error_code=int(code) if version >= 2 else 0,
        topics=[
            _FetchTopic(
                name=t,
                partitions=await paced_map(_partition, rows, pacer),
            )
            async for t, rows in paced(topics, pacer)
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
        refused = authz.group_error(broker, header, authz.DELETE, request.group_id)
        if refused is not None:
            raise KafkaError(refused)
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
