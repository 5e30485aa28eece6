"""KIP-932: ShareFetch (78) and ShareAcknowledge (79).

A share fetch acknowledges what its partitions carry (piggy-backed acknowledgements),
updates the member's share session (partitions added by naming them, removed in
ForgottenTopicsData), then acquires records from every partition of the session,
long-polling up to MaxWaitMs until something can be acquired: new records (the high
watermark moves) or redeliverable ones (a release, an expired lock). The domain is in
:mod:`moldau.coordinator.share.manager`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from moldau.handlers.authorize import GROUP, READ, TOPIC, allowed
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode, KafkaError, to_kafka_error
from moldau.protocol.messages import ALL_APIS
from moldau.replication.partition import wake
from moldau.storage.errors import OffsetOutOfRangeError

SHARE_FETCH = ALL_APIS[78]
SHARE_ACKNOWLEDGE = ALL_APIS[79]
EMPTY = b""

_fetch = codec_for(SHARE_FETCH)
_FTopic = _fetch.Response.of("responses")
_FPartition = _FTopic.of("partitions")
_FAcquired = _FPartition.of("acquired_records")
_FLeader = _FPartition.of("current_leader")

_ack = codec_for(SHARE_ACKNOWLEDGE)
_ATopic = _ack.Response.of("responses")
_APartition = _ATopic.of("partitions")
_ALeader = _APartition.of("current_leader")


def _check_request(broker: Any, header: Any, request: Any) -> None:
    if not broker.config.bool("group.share.enable"):
        raise KafkaError(ErrorCode.UNSUPPORTED_VERSION, "Share groups are not enabled.")
    if not request.group_id or not request.member_id:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "GroupId and MemberId must be set.")
    if broker.authorizer is not None and not allowed(broker, header, READ, GROUP, request.group_id):
        raise KafkaError(ErrorCode.GROUP_AUTHORIZATION_FAILED)


def _partition_error(broker: Any, header: Any, name: str | None, index: int) -> tuple[ErrorCode, Any]:
    """(error, the hosted partition) for one named partition of a share request."""
    if name is None:
        return ErrorCode.UNKNOWN_TOPIC_ID, None
    if broker.authorizer is not None and not allowed(broker, header, READ, TOPIC, name):
        return ErrorCode.TOPIC_AUTHORIZATION_FAILED, None
    partition = broker.partition(name, index)
    if partition is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None
    if not partition.is_leader:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER, None
    return ErrorCode.NONE, partition


def _ack_batches(batches: Any) -> list[tuple[int, int, list[int]]]:
    return [(b.first_offset, b.last_offset, list(b.acknowledge_types)) for b in batches]


def _apply_acks(broker: Any, header: Any, request: Any, topics: Any) -> dict[tuple[uuid.UUID, int], ErrorCode]:
    """Apply the acknowledgements of a request's topics; the result per partition named
    with any."""
    manager = broker.share_manager
    names: dict[uuid.UUID, str] = broker.topic_names_by_id
    results: dict[tuple[uuid.UUID, int], ErrorCode] = {}
    for topic in topics:
        name = names.get(topic.topic_id)
        for p in topic.partitions:
            if not p.acknowledgement_batches:
                continue
            error, partition = _partition_error(broker, header, name, p.partition_index)
            if error is ErrorCode.NONE:
                assert name is not None
                error = manager.acknowledge(
                    request.group_id, request.member_id, name, p.partition_index, _ack_batches(p.acknowledgement_batches)
                )
            results[(topic.topic_id, p.partition_index)] = error
    return results


@handles(SHARE_FETCH, 1, 1)
async def share_fetch(broker: Any, header: Any, request: Any) -> Any:
    manager = broker.share_manager
    try:
        _check_request(broker, header, request)
        await broker.share_state.ready()
        session = manager.open_session(request.group_id, request.member_id, request.share_session_epoch)
    except KafkaError as exc:
        return _fetch.Response(throttle_time_ms=0, error_code=int(exc.code), error_message=exc.message,
                               acquisition_lock_timeout_ms=0, responses=[])
    group_id, member_id = request.group_id, request.member_id
    names: dict[uuid.UUID, str] = broker.topic_names_by_id
    ids = {v: k for k, v in names.items()}
    ack_results = _apply_acks(broker, header, request, request.topics)
    if ack_results:
        await broker.share_state.persist()
    final = request.share_session_epoch == -1
    errors: dict[tuple[uuid.UUID, int], ErrorCode] = {}
    for topic in request.topics:
        name = names.get(topic.topic_id)
        for p in topic.partitions:
            if name is None:
                errors[(topic.topic_id, p.partition_index)] = ErrorCode.UNKNOWN_TOPIC_ID
            else:
                session.partitions.add((name, p.partition_index))
    for topic in request.forgotten_topics_data:
        name = names.get(topic.topic_id)
        for index in topic.partitions:
            if name is not None:
                session.partitions.discard((name, index))
    if final:
        manager.close_session(group_id, member_id)
    acquired: dict[tuple[uuid.UUID, int], Any] = {}
    lock_ms = manager.lock_duration_ms(group_id)
    if not final and request.max_records > 0:
        deadline = time.monotonic() + max(0, request.max_wait_ms) / 1000
        loop = asyncio.get_running_loop()
        while True:
            remaining_bytes = request.max_bytes if request.max_bytes > 0 else 0x7FFFFFFF
            left_ms = (deadline - time.monotonic()) * 1000
            records_left = request.max_records
            waits = []
            for name, index in sorted(session.partitions):
                tid = ids.get(name)
                if tid is None:
                    continue
                error, partition = _partition_error(broker, header, name, index)
                if error is not ErrorCode.NONE:
                    errors[(tid, index)] = error
                    continue
                if records_left <= 0 or remaining_bytes <= 0:
                    continue
                try:
                    # a share-partition new here starts from its coordinator's state
                    await broker.share_state.prepare(group_id, name, index, max(left_ms, 1000) / 1000)
                    got = manager.acquire(group_id, member_id, name, index, partition, records_left, remaining_bytes)
                except (KafkaError, OffsetOutOfRangeError) as exc:
                    errors[(tid, index)] = to_kafka_error(exc).code
                    continue
                if got.acquired:
                    acquired[(tid, index)] = got
                    remaining_bytes -= got.size
                    records_left -= sum(a.last - a.first + 1 for a in got.acquired)
                else:
                    waits.append(((group_id, name, index), partition))
            left = deadline - time.monotonic()
            if acquired or errors or left <= 0 or not waits:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            for key, partition in waits:
                partition.add_waiter(waiter)
                manager.add_waiter(key, waiter)
            timer = loop.call_later(left, wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                for key, partition in waits:
                    partition.remove_waiter(waiter)
                    manager.remove_waiter(key, waiter)
            if (group_id, member_id) not in manager.sessions:
                break
    await broker.share_state.persist()  # before answering: what was acknowledged is in the log
    by_topic: dict[uuid.UUID, list[Any]] = {}
    for key in sorted(set(ack_results) | set(errors) | set(acquired), key=lambda k: (str(k[0]), k[1])):
        tid, index = key
        data = _FPartition(
            partition_index=index,
            error_code=int(errors.get(key, ErrorCode.NONE)),
            acknowledge_error_code=int(ack_results.get(key, ErrorCode.NONE)),
            current_leader=_FLeader(leader_id=-1, leader_epoch=-1),
            records=EMPTY,
            acquired_records=[],
        )
        got = acquired.get(key)
        if got is not None:
            data.records = got.records
            data.acquired_records = [
                _FAcquired(first_offset=a.first, last_offset=a.last, delivery_count=a.count) for a in got.acquired
            ]
        by_topic.setdefault(tid, []).append(data)
    return _fetch.Response(
        throttle_time_ms=0,
        error_code=0,
        acquisition_lock_timeout_ms=lock_ms,
        responses=[_FTopic(topic_id=t, partitions=ps) for t, ps in by_topic.items()],
        node_endpoints=[],
    )


@handles(SHARE_ACKNOWLEDGE, 1, 1)
async def share_acknowledge(broker: Any, header: Any, request: Any) -> Any:
    manager = broker.share_manager
    try:
        _check_request(broker, header, request)
        if request.share_session_epoch == 0:
            raise KafkaError(ErrorCode.INVALID_SHARE_SESSION_EPOCH)
        await broker.share_state.ready()
        manager.open_session(request.group_id, request.member_id, request.share_session_epoch)
    except KafkaError as exc:
        return _ack.Response(throttle_time_ms=0, error_code=int(exc.code), error_message=exc.message, responses=[])
    results = _apply_acks(broker, header, request, request.topics)
    if request.share_session_epoch == -1:
        manager.close_session(request.group_id, request.member_id)
    await broker.share_state.persist()
    by_topic: dict[uuid.UUID, list[Any]] = {}
    for (tid, index), error in results.items():
        by_topic.setdefault(tid, []).append(
            _APartition(partition_index=index, error_code=int(error), current_leader=_ALeader(leader_id=-1, leader_epoch=-1))
        )
    return _ack.Response(
        throttle_time_ms=0, error_code=0,
        responses=[_ATopic(topic_id=t, partitions=ps) for t, ps in by_topic.items()],
        node_endpoints=[],
    )
