"""Produce (key 0): append record batches to partition leaders.

Records arrive as writable memoryview slices of the request frame; the log validates
batch headers, CRCs and every record (moldau.records.validation) and patches offsets in
place, so the data is written exactly as the client framed it, without a copy.

acks=all (-1) is Kafka's delayed produce: after the append, a partition whose high
watermark has not passed the batch yet (followers still to fetch it) is awaited,
woken by each advance of the high watermark, until every such partition is committed
or the request's ``timeout_ms`` passes (REQUEST_TIMED_OUT). A partition whose leader
changed meanwhile answers NOT_LEADER_OR_FOLLOWER; one whose ISR shrank below
``min.insync.replicas`` after the append answers NOT_ENOUGH_REPLICAS_AFTER_APPEND. With
the ISR this broker alone (a single node) the high watermark passes at once and the
answer is immediate, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from moldau.controller.controller import INTERNAL_TOPICS
from moldau.handlers.authorize import WRITE, topic_error, transactional_id_error
from moldau.handlers.pacing import Pacer, paced, paced_map
from moldau.handlers.registry import codec_for, handles, item_error, large_variant, listener_of
from moldau.handlers.txn_verify import verify_first_append
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS
from moldau.records import BatchView
from moldau.security.quotas import PRODUCER_BYTE_RATE, throttle

log = logging.getLogger(__name__)

PRODUCE = ALL_APIS[0]
_codec = codec_for(PRODUCE)
_PartitionResponse = _codec.Response.of("responses").of("partition_responses")
_TopicResponse = _codec.Response.of("responses")
_RecordError = _PartitionResponse.of("record_errors")
_LeaderIdAndEpoch = _PartitionResponse.of("current_leader")
_NodeEndpoint = _codec.Response.of("node_endpoints")


def leader_hint(broker: Any, topic: str, index: int) -> tuple[Any, Any] | None:
    """KIP-951: the current leader of a partition and its endpoint, for clients told
    NOT_LEADER_OR_FOLLOWER (so they need not refresh their metadata first)."""
    record = broker.topics.get(topic)
    state = None if record is None else record.partitions.get(index)
    if state is None or state.leader < 0 or state.leader == broker.node_id:
        return None  # no leader, or ourselves with our session lapsed: no help
    for info in broker.live_brokers():
        if info.broker_id == state.leader:
            return (state.leader, state.leader_epoch), info
    return None


def _append(
    broker: Any, topic: str, index: int, records: Any, acks: int, now_ms: int, version: int,
    pending: list[Any] | None = None, hints: dict[int, Any] | None = None, transactional_id: str | None = None,
) -> Any:
    result = _PartitionResponse(index=index)
    try:
        if acks not in (0, 1, -1):
            raise KafkaError(ErrorCode.INVALID_REQUIRED_ACKS)
        if topic in INTERNAL_TOPICS:
            # As Kafka's ReplicaManager: only coordinators write there, by their own path.
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic}")
        partition = broker.partition(topic, index)
        if partition is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if records is None or len(records) == 0:
            raise KafkaError(ErrorCode.INVALID_RECORD, "Produce request carries no record batch")
        if version >= 3 and BatchView(records, 0).size != len(records):
            raise KafkaError(
                ErrorCode.INVALID_RECORD,
                "Produce requests with version 3 and above must contain exactly one record batch",
            )
        if transactional_id is not None:
            verify_first_append(broker, transactional_id, partition, BatchView(records, 0))
        info = partition.append_as_leader(records, acks, now_ms)
        if pending is not None and partition.high_watermark <= info.last_offset:
            pending.append((result, partition, info.last_offset + 1, partition.leader_epoch))
        result.base_offset = info.first_offset
        result.log_append_time_ms = info.log_append_time
        result.log_start_offset = info.log_start_offset
    except Exception as raised:
        # record and storage errors carry their Kafka code (CORRUPT_MESSAGE,
        # INVALID_RECORD, MESSAGE_TOO_LARGE, KAFKA_STORAGE_ERROR, ...)
        exc = item_error(raised, log, "appending to %s-%d", topic, index)
        result.error_code = int(exc.code)
        result.error_message = exc.message
        result.base_offset = -1
        # per-record errors (v8+), e.g. keyless records on a compacted topic
        result.record_errors = [
            _RecordError(batch_index=i, batch_index_error_message=m)
            for i, m in getattr(raised, "record_errors", ())
        ]
        if exc.code == ErrorCode.NOT_LEADER_OR_FOLLOWER and version >= 10 and hints is not None:
            hint = leader_hint(broker, topic, index)
            if hint is not None:
                (leader_id, leader_epoch), info = hint
                result.current_leader = _LeaderIdAndEpoch(leader_id=leader_id, leader_epoch=leader_epoch)
                hints[info.broker_id] = info
    return result


@handles(PRODUCE, 0, 11)
def produce(broker: Any, header: Any, request: Any) -> Any:
    now_ms = int(time.time() * 1000)
    acks = request.acks
    version = header.api_version
    responses = []
    pending: list[Any] | None = [] if acks == -1 else None
    hints: dict[int, Any] = {}
    refused = None if broker.authorizer is None else _refusals(broker, header, request)
    txn_id = request.transactional_id if version >= 3 else None
    for topic in request.topic_data:
        name = topic.name
        if refused and name in refused:
            partitions = [_refused(p.index, refused[name]) for p in topic.partition_data]
        else:
            partitions = [
                _append(broker, name, p.index, p.records, acks, now_ms, version, pending, hints, txn_id)
                for p in topic.partition_data
            ]
        responses.append(_TopicResponse(name=name, partition_responses=partitions))
    return _finish(broker, header, acks, responses, hints, pending, request.timeout_ms, request)


def _refusals(broker: Any, header: Any, request: Any) -> dict[str, ErrorCode]:
    """The topics this producer may not write to, with Kafka's code: every topic
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED without WRITE on the transactional id, else
    TOPIC_AUTHORIZATION_FAILED for each topic without WRITE."""
    txn_code = transactional_id_error(broker, header, getattr(request, "transactional_id", None))
    refused = {}
    for topic in request.topic_data:
        code = txn_code or topic_error(broker, header, WRITE, topic.name)
        if code is not None:
            refused[topic.name] = code
    return refused


def _refused(index: int, code: ErrorCode) -> Any:
    return _PartitionResponse(index=index, error_code=int(code), base_offset=-1)


def _finish(
    broker: Any, header: Any, acks: int, responses: list[Any], hints: dict[int, Any], pending: list[Any] | None,
    timeout_ms: int, request: Any,
) -> Any:
    """The answer, with KIP-951's leader endpoints; for acks=all still to be replicated,
    the awaitable that completes it; none for acks=0. A producer over its
    ``producer_byte_rate`` quota is told to wait and its connection muted meanwhile."""
    throttle_ms = 0
    if PRODUCER_BYTE_RATE in broker.quotas.active:
        size = sum(len(p.records) for t in request.topic_data for p in t.partition_data if p.records is not None)
        throttle_ms = broker.quotas.record(PRODUCER_BYTE_RATE, header.connection.principal, header.client_id, size)
        throttle(header, throttle_ms)
    if acks == 0:
        if any(p.error_code for t in responses for p in t.partition_responses):
            header.connection.close()  # Kafka's way to tell an acks=0 producer
        return None
    response = _codec.Response(responses=responses, throttle_time_ms=throttle_ms)
    if hints:
        listener = listener_of(header)
        endpoints = []
        for info in hints.values():  # on the listener the producer came in on
            host, port = (info.endpoint(listener) if listener else None) or (info.host, info.port)
            endpoints.append(_NodeEndpoint(node_id=info.broker_id, host=host, port=port, rack=info.rack))
        response.node_endpoints = endpoints
    if pending:
        delayed = DelayedProduce(response, pending, timeout_ms)
        if not delayed.future.done():
            return delayed.future
    return response


class DelayedProduce:
    """The delayed part of an acks=all produce, Kafka's DelayedProduce (see the module
    docstring): ``future`` gets the response once every partition's high watermark has
    passed its batch, its leadership moved, or ``timeout_ms`` passed.

    No task and no coroutine per request: it registers itself with its partitions as a
    waiter (the ``done()``/``set_result()`` a partition calls when its high watermark or
    its role moves), re-checks there, and has one timer. A high watermark move that
    completes twenty produces is then twenty short calls, not twenty task steps.
    """

    __slots__ = ("response", "pending", "partitions", "future", "_timer")

    def __init__(self, response: Any, pending: list[Any], timeout_ms: int) -> None:
        loop = asyncio.get_running_loop()
        self.response = response
        self.pending = pending
        self.partitions = list({id(p): p for _, p, _, _ in pending}.values())
        self.future: asyncio.Future[Any] = loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        if not self._check():
            self._timer = loop.call_later(max(0, timeout_ms) / 1000, self._expire)
            for partition in self.partitions:
                partition.add_waiter(self)

    # the waiter protocol of Partition._wake (which forgets its waiters once woken)
    def done(self) -> bool:
        return self.future.done()

    def set_result(self, _value: object) -> None:
        if self.future.done() or self._check():
            return
        for partition in self.partitions:
            partition.add_waiter(self)  # (a set: where still registered, a no-op)

    def _check(self) -> bool:
        """Settle the partitions that can be; True (and the answer given) when none waits."""
        waiting = []
        for item in self.pending:
            result, partition, required, epoch = item
            if partition.leader_epoch != epoch or not partition.is_leader:
                _fail(result, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            elif partition.high_watermark >= required:
                if len(partition.isr) < partition.min_insync_replicas:
                    _fail(result, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND)
            else:
                waiting.append(item)
        self.pending = waiting
        if waiting:
            return False
        self._complete()
        return True

    def _expire(self) -> None:
        self._timer = None
        if self.future.done() or self._check():
            return
        for result, *_ in self.pending:
            _fail(result, ErrorCode.REQUEST_TIMED_OUT)
        self.pending = []
        self._complete()

    def _complete(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for partition in self.partitions:
            partition.remove_waiter(self)
        if not self.future.done():
            self.future.set_result(self.response)


async def _await_replication(response: Any, pending: list[Any], timeout_ms: int) -> Any:
    """:class:`DelayedProduce` as a coroutine."""
    return await DelayedProduce(response, pending, timeout_ms).future


def _fail(result: Any, code: ErrorCode) -> None:
    result.error_code = int(code)
    result.error_message = None
    result.base_offset = -1


@large_variant(PRODUCE)
async def produce_large(broker: Any, header: Any, request: Any) -> Any:
    """Produce for a request of more than a thousand topic and partition entries (the
    dispatcher decodes those in a worker thread): the same answers, with the event loop
    handed back every :data:`~moldau.handlers.pacing.PACE` entries."""
    now_ms = int(time.time() * 1000)
    acks = request.acks
    version = header.api_version
    pacer = Pacer()
    responses = []
    pending: list[Any] | None = [] if acks == -1 else None
    hints: dict[int, Any] = {}
    refused = None if broker.authorizer is None else _refusals(broker, header, request)
    txn_id = request.transactional_id if version >= 3 else None
    async for topic in paced(request.topic_data, pacer):
        name = topic.name
        if refused and name in refused:
            responses.append(_TopicResponse(name=name, partition_responses=[
                _refused(p.index, refused[name]) for p in topic.partition_data]))
            continue
        partitions = await paced_map(
            lambda p, name=name: _append(broker, name, p.index, p.records, acks, now_ms, version, pending, hints, txn_id),
            topic.partition_data,
            pacer,
        )
        responses.append(_TopicResponse(name=name, partition_responses=partitions))
    finished = _finish(broker, header, acks, responses, hints, pending, request.timeout_ms, request)
    return await finished if isinstance(finished, asyncio.Future) else finished
