"""WriteTxnMarkers on the partition leader: how a transaction ends in each partition.

Theory of operation (Kafka's ``ReplicaManager``/``KafkaApis.handleWriteTxnMarkersRequest``):
the transaction coordinator, once it has decided a transaction (EndTxn, an abort at
timeout or on fencing), sends each partition leader one marker per producer: producer
id and epoch, commit or abort, its coordinator epoch, the partitions. For each partition
the leader appends a control batch (:meth:`Partition.write_txn_marker`), which closes
the producer's transaction there, moves the last stable offset and, for an abort, adds
the transaction to the aborted index. The answer for a partition waits until the marker
is replicated to the ISR (the high watermark passes it: Kafka appends markers with
acks=all), so the coordinator may complete the transaction only when every marker is
safe. Once a marker on ``__consumer_offsets`` is replicated the broker's
:class:`~moldau.ports.TxnMarkerListener` s are told (the group coordinator makes that
producer's transactional offset commits visible, or drops them).

Per partition errors: UNKNOWN_TOPIC_OR_PARTITION (not hosted here),
NOT_LEADER_OR_FOLLOWER (not led here, or the leadership moved before the marker was
replicated), INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED, KAFKA_STORAGE_ERROR
and REQUEST_TIMED_OUT (not replicated within the timeout); the coordinator retries
those it can, as Kafka's does. The appends happen without an ``await`` between check and
write, and the wait-and-tell step runs as a task of its own that completes even if the
request's client goes away. The event loop is handed back every thousand partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from moldau.ports import TxnMarkerHost
from moldau.protocol.errors import ErrorCode, to_kafka_error

_log = logging.getLogger(__name__)

#: the internal topic whose markers the group coordinator must hear of
OFFSETS_TOPIC = "__consumer_offsets"
#: how long a marker may take to reach the ISR (Kafka: request.timeout.ms)
DEFAULT_TIMEOUT_S = 30.0
#: partitions appended to between two hand-backs of the event loop
PACE = 1000


async def write_txn_markers(
    host: TxnMarkerHost,
    producer_id: int,
    producer_epoch: int,
    commit: bool,
    coordinator_epoch: int,
    partitions: Sequence[tuple[str, int]],
    *,
    transaction_version: int = 0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[tuple[str, int], ErrorCode]:
    """Write one marker to each of ``partitions`` led here; the error code of each."""
    now_ms = int(time.time() * 1000)
    results: dict[tuple[str, int], ErrorCode] = {}
    waiting = []
    for n, (topic, index) in enumerate(partitions, 1):
        if n % PACE == 0:
            await asyncio.sleep(0)  # a request naming millions of partitions shares the loop
        partition = host.partition(topic, index)
        if partition is None:
            results[(topic, index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            continue
        try:
            info = partition.write_txn_marker(
                producer_id, producer_epoch, commit, coordinator_epoch, now_ms, transaction_version
            )
        except Exception as exc:  # every failure is this partition's answer
            error = to_kafka_error(exc)
            if error.code == ErrorCode.UNKNOWN_SERVER_ERROR:
                _log.exception("writing a transaction marker to %s-%d", topic, index)
            results[(topic, index)] = error.code
            continue
        waiting.append((topic, index, partition, info.last_offset + 1))
    if waiting:
        step = asyncio.ensure_future(
            _replicate_and_tell(host, waiting, producer_id, producer_epoch, commit, timeout_s)
        )
        results.update(await asyncio.shield(step))
    return results


async def _replicate_and_tell(
    host: TxnMarkerHost,
    waiting: list[tuple[str, int, object, int]],
    producer_id: int,
    producer_epoch: int,
    commit: bool,
    timeout_s: float,
) -> dict[tuple[str, int], ErrorCode]:
    codes = await asyncio.gather(
        *(partition.wait_high_watermark(end, timeout_s) for _, _, partition, end in waiting)  # type: ignore[attr-defined]
    )
    out = {}
    for (topic, index, _, _), code in zip(waiting, codes, strict=True):
        out[(topic, index)] = code
        if code == ErrorCode.NONE and topic == OFFSETS_TOPIC:
            for listener in host.txn_marker_listeners:
                try:
                    listener.txn_marker_written(topic, index, producer_id, producer_epoch, commit)
                except Exception:
                    _log.exception("transaction marker listener failed on %s-%d", topic, index)
    return out
