"""KIP-932's share coordinator APIs: InitializeShareGroupState (83),
ReadShareGroupState (84), WriteShareGroupState (85), DeleteShareGroupState (86).

Inter-broker: a share-partition's leader sends them to the broker leading the
share-partition's ``__share_group_state`` partition (see
:mod:`moldau.coordinator.share.remote`); the sender needs CLUSTER_ACTION, as Kafka
requires of a broker. The work is :class:`moldau.coordinator.share.state.ShareStatePersister`'s
``serve_*``: NOT_COORDINATOR when this broker does not lead the state partition,
COORDINATOR_LOAD_IN_PROGRESS while it reads it back, FENCED_STATE_EPOCH /
FENCED_LEADER_EPOCH for a write from an older state or leader epoch.
"""

from __future__ import annotations

from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

INITIALIZE = ALL_APIS[83]
READ = ALL_APIS[84]
WRITE = ALL_APIS[85]
DELETE = ALL_APIS[86]
SUMMARY = ALL_APIS[87]


def _results(api: Any, request: Any, serve: Any) -> Any:
    """One result per partition, ``serve(topic_id, partition data)`` giving its code."""
    codec = codec_for(api)
    Result = codec.Response.of("results")
    Partition = Result.of("partitions")
    denied = None
    results = []
    for topic in request.topics:
        partitions = []
        for p in topic.partitions:
            code = denied if denied is not None else serve(topic.topic_id, p)
            partitions.append(Partition(partition=p.partition, error_code=int(code)))
        results.append(Result(topic_id=topic.topic_id, partitions=partitions))
    return codec.Response(results=results)


def _refused(broker: Any, header: Any) -> bool:
    return authz.cluster_error(broker, header, authz.CLUSTER_ACTION) is not None


@handles(INITIALIZE, 0, 0)
async def initialize_share_group_state(broker: Any, header: Any, request: Any) -> Any:
    state = broker.share_state
    if _refused(broker, header):
        return _results(INITIALIZE, request, lambda t, p: ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    return _results(INITIALIZE, request, lambda t, p: state.serve_write(
        request.group_id, t, p.partition, p.state_epoch, -1, p.start_offset, []))


@handles(WRITE, 0, 1)
async def write_share_group_state(broker: Any, header: Any, request: Any) -> Any:
    state = broker.share_state
    if _refused(broker, header):
        return _results(WRITE, request, lambda t, p: ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    return _results(WRITE, request, lambda t, p: state.serve_write(
        request.group_id, t, p.partition, p.state_epoch, p.leader_epoch, p.start_offset,
        [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count) for b in p.state_batches]))


@handles(DELETE, 0, 0)
async def delete_share_group_state(broker: Any, header: Any, request: Any) -> Any:
    state = broker.share_state
    if _refused(broker, header):
        return _results(DELETE, request, lambda t, p: ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    return _results(DELETE, request, lambda t, p: state.serve_delete(request.group_id, t, p.partition))


@handles(READ, 0, 0)
async def read_share_group_state(broker: Any, header: Any, request: Any) -> Any:
    codec = codec_for(READ)
    Result = codec.Response.of("results")
    Partition = Result.of("partitions")
    Batch = Partition.of("state_batches")
    refused = _refused(broker, header)
    results = []
    for topic in request.topics:
        partitions = []
        for p in topic.partitions:
            if refused:
                code, (start, epoch, batches) = ErrorCode.CLUSTER_AUTHORIZATION_FAILED, (-1, 0, [])
            else:
                code, (start, epoch, batches) = broker.share_state.serve_read(
                    request.group_id, topic.topic_id, p.partition, p.leader_epoch)
            partitions.append(Partition(
                partition=p.partition, error_code=int(code), state_epoch=epoch, start_offset=start,
                state_batches=[Batch(first_offset=f, last_offset=la, delivery_state=s, delivery_count=c)
                               for f, la, s, c in batches]))
        results.append(Result(topic_id=topic.topic_id, partitions=partitions))
    return codec.Response(results=results)


@handles(SUMMARY, 0, 1)
async def read_share_group_state_summary(broker: Any, header: Any, request: Any) -> Any:
    """The start offset and, v1, how many records from it are done (KIP-1226's
    delivery complete count), without the state batches."""
    codec = codec_for(SUMMARY)
    Result = codec.Response.of("results")
    Partition = Result.of("partitions")
    refused = _refused(broker, header)
    results = []
    for topic in request.topics:
        partitions = []
        for p in topic.partitions:
            if refused:
                code, (start, epoch, batches) = ErrorCode.CLUSTER_AUTHORIZATION_FAILED, (-1, 0, [])
            else:
                code, (start, epoch, batches) = broker.share_state.serve_read(
                    request.group_id, topic.topic_id, p.partition, None)
            done = sum(b[1] - b[0] + 1 for b in batches if b[2] in (2, 4))  # ACKNOWLEDGED, ARCHIVED
            partitions.append(Partition(
                partition=p.partition, error_code=int(code), state_epoch=epoch, leader_epoch=p.leader_epoch,
                start_offset=start, delivery_complete_count=done if start >= 0 else -1))
        results.append(Result(topic_id=topic.topic_id, partitions=partitions))
    return codec.Response(results=results)
