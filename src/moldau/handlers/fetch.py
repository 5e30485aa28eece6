"""Fetch (key 1): read whole record batches, long-polling until min_bytes or max_wait.

A consumer with isolation_level read_committed (1) reads up to the partition's last
stable offset and is told the aborted transactions that overlap what it read (from the
log's aborted index), so it drops their records; read_uncommitted reads up to the high
watermark. Every answer carries the last stable offset.

The answer carries file slices, not bytes: the connection sends them with sendfile.
Limits follow Kafka: partition_max_bytes per partition, max_bytes for the response,
and the first non-empty partition always returns at least one whole batch so that a
consumer can make progress past a batch larger than its limits.

Incremental fetch sessions (KIP-227, :mod:`moldau.replication.fetch_session`): a full
request with epoch 0 opens a session (room permitting); incremental requests name only
what changed, every partition of the session is read, and the answer carries only the
partitions with news. Requests with epoch -1 (librdkafka, aiokafka, followers) are
answered without a session and pay one comparison for it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from moldau.handlers.authorize import CLUSTER_ACTION, READ, TOPIC, allowed, cluster_allowed
from moldau.handlers.pacing import PACE
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode, KafkaError, to_kafka_error
from moldau.protocol.messages import ALL_APIS
from moldau.replication.fetch_session import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    INVALID_SESSION_ID,
    CachedPartition,
    FetchSession,
    next_epoch,
)
from moldau.replication.partition import wake
from moldau.security.quotas import CONSUMER_BYTE_RATE, throttle
from moldau.storage.errors import OffsetOutOfRangeError

FETCH = ALL_APIS[1]
_codec = codec_for(FETCH)
_Response = _codec.Response
_TopicResponse = _Response.of("responses")
_PartitionData = _TopicResponse.of("partitions")
_LeaderIdAndEpoch = _PartitionData.of("current_leader")
_AbortedTransaction = _PartitionData.of("aborted_transactions")
READ_COMMITTED = 1
ZERO_UUID = uuid.UUID(int=0)
EMPTY = b""  # Kafka answers empty record sets with length 0, never null


def _topic_name(broker: Any, topic: Any, version: int) -> str | None:
    if version >= 13:
        return broker.topic_names_by_id.get(topic.topic_id)
    return topic.topic


def replica_id_of(request: Any, version: int) -> int:
    """The fetching follower's broker id (-1 for consumers): a field up to v14, inside
    ReplicaState from v15."""
    if version >= 15:
        state = getattr(request, "replica_state", None)
        return -1 if state is None else state.replica_id
    return request.replica_id


async def _read_all(
    broker: Any, request: Any, version: int, replica_id: int = -1, refused: set[str] | None = None,
    quota_bytes: float | None = None, wanted: list[Any] | None = None, sizes: dict[str, int] | None = None,
) -> tuple[list[Any], int, dict[int, Any]]:
    """One pass over the requested partitions; returns (topics, bytes, partitions read),
    and adds the bytes read per topic to ``sizes`` when given (for the metrics).

    The loop is handed back every PACE entries (counted inline: this is the hot path),
    so a request naming a million partitions does not stall other clients. A
    follower's fetch (``replica_id`` >= 0) reads up to the log end, not the high
    watermark, and tells the leader how far that follower is (its fetch offset).
    """
    remaining = request.max_bytes if version >= 3 else 0x7FFFFFFF
    if quota_bytes is not None:  # Kafka: no more than a consumer quota's window allows
        remaining = min(remaining, max(1, int(quota_bytes)))
    total = 0
    min_one = True
    topics = []
    hosted: dict[int, Any] = {}  # each partition once, however often it is named
    entries = 0
    committed = replica_id < 0 and request.isolation_level == READ_COMMITTED
    for topic in request.topics if wanted is None else wanted:
        name = _topic_name(broker, topic, version)
        answers = []
        entries += 1
        for p in topic.partitions:
            entries += 1
            if entries >= PACE:
                entries = 0
                await asyncio.sleep(0)
            data = _PartitionData(partition_index=p.partition, records=EMPTY)
            answers.append(data)
            partition = broker.partition(name, p.partition) if name is not None else None
            if refused and name in refused:
                data.error_code = int(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                data.high_watermark = data.last_stable_offset = data.log_start_offset = -1
                continue
            if partition is None:
                unknown_id = version >= 13 and name is None
                data.error_code = int(ErrorCode.UNKNOWN_TOPIC_ID if unknown_id else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                data.high_watermark = data.last_stable_offset = data.log_start_offset = -1
                continue
            hosted[id(partition)] = partition
            try:
                if version >= 9:
                    partition.check_leader_epoch(p.current_leader_epoch)
                if not partition.is_leader:
                    raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
                limit = min(p.partition_max_bytes, remaining)
                if replica_id >= 0:
                    partition.update_follower_fetch(replica_id, p.fetch_offset)
                    read = partition.read_for_follower(p.fetch_offset, limit, min_one_message=min_one)
                    broker.replica_manager.maybe_change_isr(partition)
                elif committed:
                    read = partition.read_committed(p.fetch_offset, limit, min_one_message=min_one)
                    data.aborted_transactions = [
                        _AbortedTransaction(producer_id=a.producer_id, first_offset=a.first_offset)
                        for a in read.aborted
                    ]
                else:
                    read = partition.read(p.fetch_offset, limit, min_one_message=min_one)
            except (KafkaError, OffsetOutOfRangeError) as exc:
                data.error_code = int(to_kafka_error(exc).code)
                if data.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER and version >= 12:
                    state = broker.topics[name].partitions.get(p.partition)
                    if state is not None and state.leader >= 0 and state.leader != broker.node_id:  # KIP-951
                        data.current_leader = _LeaderIdAndEpoch(leader_id=state.leader, leader_epoch=state.leader_epoch)
                data.high_watermark = partition.high_watermark
                data.last_stable_offset = partition.last_stable_offset
                data.log_start_offset = partition.log.log_start_offset
                continue
            data.high_watermark = read.high_watermark
            data.last_stable_offset = read.last_stable_offset
            data.log_start_offset = read.log_start_offset
            if read.records is not None:
                data.records = read.records
            if read.size:
                total += read.size
                remaining = max(0, remaining - read.size)
                min_one = False
                if sizes is not None:
                    sizes[name] = sizes.get(name, 0) + read.size  # type: ignore[index]
        response = _TopicResponse(partitions=answers)
        if version >= 13:
            response.topic_id = topic.topic_id
        else:
            response.topic = topic.topic
        topics.append(response)
    return topics, total, hosted


def _count(stats: Any, sizes: dict[str, int] | None, follower: bool, with_errors: list[Any] | None) -> None:
    """Add an answer's bytes per topic (consumers' and followers' apart, as Kafka's
    BytesOut and ReplicationBytesOut) and its partitions' error codes to the metrics."""
    for name, size in (sizes or {}).items():
        stats.topic_out[name][follower] += size
    for topic in with_errors or ():
        for p in topic.partitions:
            if p.error_code:
                stats.error(FETCH.key, p.error_code)


def _refusals(broker: Any, header: Any, topics: list[Any], version: int, replica_id: int) -> set[str]:
    """The topics this fetch may not read (Kafka: a follower needs CLUSTER_ACTION on the
    cluster, a consumer READ on each topic; refused ones get TOPIC_AUTHORIZATION_FAILED)."""
    names = {n for n in (_topic_name(broker, t, version) for t in topics) if n is not None}
    if replica_id >= 0:
        return set() if cluster_allowed(broker, header, CLUSTER_ACTION) else names
    return {n for n in names if not allowed(broker, header, READ, TOPIC, n)}


def _session_error(code: ErrorCode) -> Any:
    return _Response(error_code=int(code), session_id=INVALID_SESSION_ID, responses=[])


def _open_session(broker: Any, request: Any, version: int, replica_id: int, topics: list[Any]) -> int:
    """A new session of every partition of a full request (epoch 0), told what the
    answer ``topics`` tells; its id, or 0 when the cache has no room."""
    ids = version >= 13
    cached: dict[tuple[Any, int], CachedPartition] = {}
    for topic, answered in zip(request.topics, topics, strict=True):
        key = topic.topic_id if ids else topic.topic
        for p, data in zip(topic.partitions, answered.partitions, strict=True):
            entry = CachedPartition(None if ids else topic.topic, topic.topic_id if ids else None, p)
            entry.high_watermark = -1 if data.error_code else data.high_watermark
            entry.local_log_start_offset = data.log_start_offset
            cached[(key, p.partition)] = entry
    now_ms = int(time.time() * 1000)
    return broker.fetch_sessions.maybe_create(now_ms, replica_id >= 0, ids, cached)  # type: ignore[no-any-return]


def _incremental_answer(session: FetchSession, wanted: list[Any], topics: list[Any]) -> list[Any]:
    """The partitions of an incremental answer: those with news (each remembered)."""
    kept_topics = []
    served = []
    for session_topic, answered in zip(wanted, topics, strict=True):
        kept = []
        for cached, data in zip(session_topic.partitions, answered.partitions, strict=True):
            has_records = data.records is not EMPTY
            if cached.must_respond(data, has_records):
                kept.append(data)
                if has_records:
                    served.append(cached)
        if kept:
            answered.partitions = kept
            kept_topics.append(answered)
    if served:
        session.moved_to_end(iter(served))
    return kept_topics


def _session_for(broker: Any, request: Any, version: int) -> tuple[Any, FetchSession | None]:
    """The fetch session an incremental request continues (its epoch moved on), or None
    for a full request (closing the session it names); or the error answer."""
    sessions = broker.fetch_sessions
    epoch = request.session_epoch
    if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
        if request.session_id != INVALID_SESSION_ID:
            sessions.remove(request.session_id)
        return None, None
    session = sessions.get(request.session_id)
    if session is None:
        return _session_error(ErrorCode.FETCH_SESSION_ID_NOT_FOUND), None
    if session.epoch != epoch:
        return _session_error(ErrorCode.INVALID_FETCH_SESSION_EPOCH), None
    if session.uses_topic_ids != (version >= 13):
        return _session_error(ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR), None
    before = len(session.partitions)
    session.update(request.topics, request.forgotten_topics_data)
    if len(session.partitions) > before and sessions.over_budget():  # Moldau's bound (see fetch_session)
        sessions.remove(session.id)
        return _session_error(ErrorCode.FETCH_SESSION_ID_NOT_FOUND), None
    if not session.partitions:  # nothing left: closed, answered session-less
        sessions.remove(session.id)
        return None, None
    sessions.touch(session, int(time.time() * 1000))
    session.epoch = next_epoch(session.epoch)
    return None, session


@handles(FETCH, 4, 18)
async def fetch(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    replica_id = replica_id_of(request, version)
    session: FetchSession | None = None
    wanted = None  # None: the request's own topics; else the session's
    if version >= 7 and (request.session_id != INVALID_SESSION_ID or request.session_epoch != FINAL_EPOCH):
        failed, session = _session_for(broker, request, version)
        if failed is not None:
            return failed
        if session is not None:
            wanted = session.topics()
    deadline = time.monotonic() + max(0, request.max_wait_ms) / 1000
    loop = asyncio.get_running_loop()
    refused = None
    if broker.authorizer is not None:
        refused = _refusals(broker, header, request.topics if wanted is None else wanted, version, replica_id)
    quota_bytes = None
    if CONSUMER_BYTE_RATE in broker.quotas.active and replica_id < 0:
        quota_bytes = broker.quotas.max_value_in_window(CONSUMER_BYTE_RATE, header.connection.principal, header.client_id)
    stats = broker.stats if broker.stats.enabled else None
    while True:
        sizes: dict[str, int] | None = None if stats is None else {}
        topics, total, hosted = await _read_all(broker, request, version, replica_id, refused, quota_bytes, wanted,
                                                sizes)
        remaining = deadline - time.monotonic()
        errors = any(p.error_code for t in topics for p in t.partitions)
        if total >= max(request.min_bytes, 1) or remaining <= 0 or errors or not hosted:
            throttle_ms = 0
            if quota_bytes is not None:
                principal, client_id = header.connection.principal, header.client_id
                throttle_ms = broker.quotas.record(CONSUMER_BYTE_RATE, principal, client_id, total)
                if throttle_ms > 0:
                    # as Kafka: a throttled fetch answers nothing (its bytes are taken back)
                    # and the consumer asks again once the throttle time has passed; a
                    # full fetch opens no session then, an incremental one keeps its own
                    broker.quotas.unrecord(CONSUMER_BYTE_RATE, principal, client_id, total)
                    throttle(header, throttle_ms)
                    throttled_id = INVALID_SESSION_ID if session is None else session.id
                    return _Response(throttle_time_ms=throttle_ms, error_code=0, session_id=throttled_id, responses=[])
            if stats is not None:
                _count(stats, sizes, replica_id >= 0, topics if errors else None)
            session_id = INVALID_SESSION_ID
            if session is not None:
                session_id = session.id
                if session.epoch != next_epoch(request.session_epoch):  # the same epoch came again meanwhile
                    return _Response(throttle_time_ms=throttle_ms, error_code=int(ErrorCode.INVALID_FETCH_SESSION_EPOCH),
                                     session_id=session_id, responses=[])
                topics = _incremental_answer(session, wanted, topics)  # type: ignore[arg-type]
            elif version >= 7 and request.session_epoch == INITIAL_EPOCH:
                session_id = _open_session(broker, request, version, replica_id, topics)
            return _Response(throttle_time_ms=throttle_ms, error_code=0, session_id=session_id, responses=topics)
        # one future, woken by an append (followers) or a high watermark move (consumers)
        # or by the timer: the long poll of every replica fetch, so no wait_for task
        waiter: asyncio.Future[None] = loop.create_future()
        for partition in hosted.values():
            if replica_id >= 0:
                partition.add_append_waiter(waiter)
            else:
                partition.add_waiter(waiter)
        timer = loop.call_later(remaining, wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            for partition in hosted.values():
                if replica_id >= 0:
                    partition.remove_append_waiter(waiter)
                else:
                    partition.remove_waiter(waiter)
