"""DescribeLogDirs (35) and AlterReplicaLogDirs (34).

A broker has one log directory, its data directory, named by its absolute path as
Kafka names each of its ``log.dirs``. DescribeLogDirs lists, for the partitions asked
(all with null topics) that this broker holds a replica of, the bytes of their
segments and Kafka's ``offset_lag`` -- ``max(high watermark - log end offset, 0)``,
which is 0 for every replica that is not a "future" log being moved between
directories -- plus the directory's total and usable bytes (v4+).

AlterReplicaLogDirs moves replicas between a broker's directories. With one directory
there is nowhere to move to: a path other than the data directory is
LOG_DIR_NOT_FOUND (Kafka's answer for a path not in ``log.dirs``); the data directory
itself is a no-op (NONE) for a replica held here, REPLICA_NOT_AVAILABLE for one that
is not (Kafka's answer when the replica does not exist).
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.pacing import paced
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

log = logging.getLogger(__name__)

ALTER_REPLICA_LOG_DIRS = ALL_APIS[34]
DESCRIBE_LOG_DIRS = ALL_APIS[35]
_describe = codec_for(DESCRIBE_LOG_DIRS)
_Result = _describe.Response.of("results")
_Topic = _Result.of("topics")
_Partition = _Topic.of("partitions")
_alter = codec_for(ALTER_REPLICA_LOG_DIRS)
_AlterTopic = _alter.Response.of("results")
_AlterPartition = _AlterTopic.of("partitions")


def log_dir(broker: Any) -> str:
    """The broker's one log directory, as an absolute path (Kafka's getAbsolutePath)."""
    return os.path.abspath(broker.data_dir)


@handles(DESCRIBE_LOG_DIRS, 1, 5)  # v5: is_cordoned (KIP-1066), never set here
async def describe_log_dirs(broker: Any, header: Any, request: Any) -> Any:
    if authz.cluster_error(broker, header, authz.DESCRIBE) is not None:  # Kafka: no results, and v3+ the code
        return _describe.Response(throttle_time_ms=0, error_code=int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED), results=[])
    if request.topics is None:
        wanted: list[tuple[str, list[int]]] = []
        for topic, index in sorted(broker.partitions):
            if wanted and wanted[-1][0] == topic:
                wanted[-1][1].append(index)
            else:
                wanted.append((topic, [index]))
    else:
        wanted = [(t.topic, list(t.partitions)) for t in request.topics]
    topics = []
    async for name, indexes in paced(wanted):
        partitions = []
        for index in dict.fromkeys(indexes):
            partition = broker.partition(name, index)
            if partition is None:
                continue
            partitions.append(_Partition(
                partition_index=index,
                partition_size=partition.log.size_in_bytes,
                offset_lag=max(partition.high_watermark - partition.log.log_end_offset, 0),
                is_future_key=False,
            ))
        if partitions:
            topics.append(_Topic(name=name, partitions=partitions))
    path = log_dir(broker)
    result = _Result(error_code=0, log_dir=path, topics=topics)
    try:
        usage = shutil.disk_usage(path)
        result.total_bytes, result.usable_bytes = usage.total, usage.free
    except OSError as exc:
        log.warning("cannot read the size of %s: %s", path, exc)
        result.error_code = int(ErrorCode.KAFKA_STORAGE_ERROR)
    return _describe.Response(throttle_time_ms=0, error_code=0, results=[result])


@handles(ALTER_REPLICA_LOG_DIRS, 1, 2)
async def alter_replica_log_dirs(broker: Any, header: Any, request: Any) -> Any:
    ours = log_dir(broker)
    refused = authz.cluster_error(broker, header, authz.ALTER)
    results: dict[str, list[Any]] = {}
    async for target in paced(request.dirs):
        for topic in target.topics:
            for index in topic.partitions:
                if refused is not None:
                    code = refused
                elif target.path != ours:
                    code = ErrorCode.LOG_DIR_NOT_FOUND
                elif broker.partition(topic.name, index) is None:
                    code = ErrorCode.REPLICA_NOT_AVAILABLE
                else:
                    code = ErrorCode.NONE
                results.setdefault(topic.name, []).append(
                    _AlterPartition(partition_index=index, error_code=int(code))
                )
    return _alter.Response(
        throttle_time_ms=0,
        results=[_AlterTopic(topic_name=name, partitions=parts) for name, parts in results.items()],
    )
