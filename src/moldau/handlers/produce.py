"""Produce (key 0): append record batches to partition leaders.

Records arrive as writable memoryview slices of the request frame; the log validates
batch headers, CRCs and every record (moldau.records.validation) and patches offsets in
place, so the data is written exactly as the client framed it, without a copy.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from moldau.controller.controller import INTERNAL_TOPICS
from moldau.handlers.pacing import Pacer, paced, paced_map
from moldau.handlers.registry import codec_for, handles, large_variant
from moldau.protocol.errors import ErrorCode, KafkaError, to_kafka_error
from moldau.protocol.messages import ALL_APIS
from moldau.records import BatchView

log = logging.getLogger(__name__)

PRODUCE = ALL_APIS[0]
_codec = codec_for(PRODUCE)
_PartitionResponse = _codec.Response.of("responses").of("partition_responses")
_TopicResponse = _codec.Response.of("responses")
_RecordError = _PartitionResponse.of("record_errors")


def _append(
    broker: Any, topic: str, index: int, records: Any, acks: int, now_ms: int, version: int
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
        info = partition.append_as_leader(records, acks, now_ms)
        result.base_offset = info.first_offset
        result.log_append_time_ms = info.log_append_time
        result.log_start_offset = info.log_start_offset
    except Exception as raised:
        # record and storage errors carry their Kafka code (CORRUPT_MESSAGE,
        # INVALID_RECORD, MESSAGE_TOO_LARGE, KAFKA_STORAGE_ERROR, ...)
        exc = to_kafka_error(raised)
        if exc.code == ErrorCode.UNKNOWN_SERVER_ERROR:
            log.exception("unexpected error appending to %s-%d", topic, index)
        result.error_code = int(exc.code)
        result.error_message = exc.message
        result.base_offset = -1
        # per-record errors (v8+), e.g. keyless records on a compacted topic
        result.record_errors = [
            _RecordError(batch_index=i, batch_index_error_message=m)
            for i, m in getattr(raised, "record_errors", ())
        ]
    return result


@handles(PRODUCE, 0, 11)
def produce(broker: Any, header: Any, request: Any) -> Any:
    now_ms = int(time.time() * 1000)
    acks = request.acks
    version = header.api_version
    responses = []
    for topic in request.topic_data:
        name = topic.name
        partitions = [_append(broker, name, p.index, p.records, acks, now_ms, version) for p in topic.partition_data]
        responses.append(_TopicResponse(name=name, partition_responses=partitions))
    if acks == 0:
        if any(p.error_code for t in responses for p in t.partition_responses):
            header.connection.close()  # Kafka's way to tell an acks=0 producer
        return None
    return _codec.Response(responses=responses, throttle_time_ms=0)


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
    async for topic in paced(request.topic_data, pacer):
        name = topic.name
        partitions = await paced_map(
            lambda p, name=name: _append(broker, name, p.index, p.records, acks, now_ms, version),
            topic.partition_data,
            pacer,
        )
        responses.append(_TopicResponse(name=name, partition_responses=partitions))
    if acks == 0:
        if any(p.error_code for t in responses for p in t.partition_responses):
            header.connection.close()  # Kafka's way to tell an acks=0 producer
        return None
    return _codec.Response(responses=responses, throttle_time_ms=0)
