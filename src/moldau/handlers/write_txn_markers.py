"""WriteTxnMarkers (key 27): the transaction coordinator ends a transaction on a leader.

An inter-broker API (Kafka's coordinators send it to every partition leader of a
transaction, themselves included); the work is
:func:`moldau.replication.txn_markers.write_txn_markers`, which appends the markers,
waits for their replication and answers per partition. Versions 1-2 as Kafka 4 serves
them (v2 adds ``transaction_version``, KIP-890's transactions version 2).
"""

from __future__ import annotations

import asyncio
from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS
from moldau.replication.txn_markers import write_txn_markers as write_markers

WRITE_TXN_MARKERS = ALL_APIS[27]
_codec = codec_for(WRITE_TXN_MARKERS)
_Marker = _codec.Response.of("markers")
_Topic = _Marker.of("topics")
_Partition = _Topic.of("partitions")


@handles(WRITE_TXN_MARKERS, 1, 2)
async def write_txn_markers(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    if authz.cluster_error(broker, header, authz.CLUSTER_ACTION) is not None:
        denied = int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        return _codec.Response(markers=[
            _Marker(producer_id=m.producer_id, topics=[
                _Topic(name=t.name, partitions=[_Partition(partition_index=i, error_code=denied) for i in t.partition_indexes])
                for t in m.topics
            ])
            for m in request.markers
        ])
    timeout_s = broker.config.int("request.timeout.ms") / 1000
    # the markers are appended one after the other (each call appends before its first
    # await, bar pacing) and then all wait for the ISR together, as Kafka appends a
    # request's markers at once
    results = await asyncio.gather(*(
        write_markers(
            broker,
            marker.producer_id,
            marker.producer_epoch,
            bool(marker.transaction_result),
            marker.coordinator_epoch,
            [(t.name, i) for t in marker.topics for i in t.partition_indexes],
            transaction_version=marker.transaction_version if version >= 2 else 0,
            timeout_s=timeout_s,
        )
        for marker in request.markers
    ))
    answers = []
    for marker, codes in zip(request.markers, results, strict=True):
        topics = [
            _Topic(
                name=t.name,
                partitions=[
                    _Partition(partition_index=i, error_code=int(codes[(t.name, i)])) for i in t.partition_indexes
                ],
            )
            for t in marker.topics
        ]
        answers.append(_Marker(producer_id=marker.producer_id, topics=topics))
    return _codec.Response(markers=answers)
