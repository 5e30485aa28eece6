"""DescribeLogDirs (35) and AlterReplicaLogDirs (34).

A broker's log directories are Kafka's ``log.dirs`` (its data directory when not set),
each named by its absolute path. DescribeLogDirs lists each directory with, for the
partitions asked (all with null topics) whose replica it holds, the bytes of their
segments and Kafka's ``offset_lag`` -- ``max(high watermark - log end offset, 0)``,
which is 0 for every replica that is not a "future" log being moved -- plus the
directory's total and usable bytes (v4+).

AlterReplicaLogDirs moves replicas between a broker's directories: a path not among
them is LOG_DIR_NOT_FOUND, a replica not held here REPLICA_NOT_AVAILABLE (Kafka's
answers). On one filesystem a move is one step: the log is flushed, its directory
renamed into the other log directory and reopened. Across filesystems (separate disks)
the log is copied while it stays live (:mod:`moldau.storage.log_mover`), then closed
for the last changes and reopened there. Either way the answer comes once the move is
done, so no "future" replica is ever visible (Kafka answers at once and copies through
a future replica that DescribeLogDirs shows meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.pacing import paced
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

log = logging.getLogger(__name__)

#: a move to another filesystem copies on a worker thread until one round copies less
#: than this (or after this many rounds); the rest is copied with the log closed
_COPY_ROUNDS = 5
_LAST_COPY_BYTES = 4 << 20

ALTER_REPLICA_LOG_DIRS = ALL_APIS[34]
DESCRIBE_LOG_DIRS = ALL_APIS[35]
_describe = codec_for(DESCRIBE_LOG_DIRS)
_Result = _describe.Response.of("results")
_Topic = _Result.of("topics")
_Partition = _Topic.of("partitions")
_alter = codec_for(ALTER_REPLICA_LOG_DIRS)
_AlterTopic = _alter.Response.of("results")
_AlterPartition = _AlterTopic.of("partitions")


def log_dirs(broker: Any) -> list[str]:
    """The broker's log directories, as absolute paths (Kafka's getAbsolutePath)."""
    return [os.path.abspath(d) for d in broker.log_dirs]


# v4 is Kafka 4.2's newest; v5 (is_cordoned, KIP-1066) comes with a later Kafka, and
# advertising it makes kafka-python infer a broker newer than any released one
@handles(DESCRIBE_LOG_DIRS, 1, 4)
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
    by_dir: dict[str, list[Any]] = {path: [] for path in log_dirs(broker)}
    async for name, indexes in paced(wanted):
        partitions: dict[str, list[Any]] = {}
        for index in dict.fromkeys(indexes):
            partition = broker.partition(name, index)
            if partition is None:
                continue
            path = os.path.abspath(partition.log.dir.parent)
            partitions.setdefault(path, []).append(_Partition(
                partition_index=index,
                partition_size=partition.log.size_in_bytes,
                offset_lag=max(partition.high_watermark - partition.log.log_end_offset, 0),
                is_future_key=False,
            ))
        for path, found in partitions.items():
            by_dir.setdefault(path, []).append(_Topic(name=name, partitions=found))
    results = []
    for path, topics in by_dir.items():
        result = _Result(error_code=0, log_dir=path, topics=topics)
        try:
            usage = shutil.disk_usage(path)
            result.total_bytes, result.usable_bytes = usage.total, usage.free
        except OSError as exc:
            log.warning("cannot read the size of %s: %s", path, exc)
            result.error_code = int(ErrorCode.KAFKA_STORAGE_ERROR)
        results.append(result)
    return _describe.Response(throttle_time_ms=0, error_code=0, results=results)


@handles(ALTER_REPLICA_LOG_DIRS, 1, 2)
async def alter_replica_log_dirs(broker: Any, header: Any, request: Any) -> Any:
    ours = set(log_dirs(broker))
    refused = authz.cluster_error(broker, header, authz.ALTER)
    results: dict[str, list[Any]] = {}
    async for target in paced(request.dirs):
        for topic in target.topics:
            for index in topic.partitions:
                if refused is not None:
                    code = refused
                elif os.path.abspath(target.path) not in ours:
                    code = ErrorCode.LOG_DIR_NOT_FOUND
                else:
                    code = await _move(broker, topic.name, index, os.path.abspath(target.path))
                results.setdefault(topic.name, []).append(
                    _AlterPartition(partition_index=index, error_code=int(code))
                )
    return _alter.Response(
        throttle_time_ms=0,
        results=[_AlterTopic(topic_name=name, partitions=parts) for name, parts in results.items()],
    )


async def _move(broker: Any, topic: str, index: int, path: str) -> ErrorCode:
    """Move one replica's log into ``path`` (see the module docstring)."""
    partition = broker.partition(topic, index)
    if partition is None:
        return ErrorCode.REPLICA_NOT_AVAILABLE
    manager = broker.log_manager
    try:
        if manager.dir_of(topic, index) == Path(path):
            return ErrorCode.NONE
        if manager.same_filesystem(topic, index, Path(path)):
            moved = manager.move_log(topic, index, Path(path))
        else:
            copy = manager.begin_copy(topic, index, Path(path))
            for _ in range(_COPY_ROUNDS):  # the bulk on a worker thread, while the log stays live
                if await asyncio.to_thread(copy.step) < _LAST_COPY_BYTES:
                    break
            moved = manager.finish_copy(topic, index, copy)
    except OSError as exc:
        log.error("cannot move %s-%d to %s: %s", topic, index, path, exc)
        current = manager.get_log(topic, index)
        if current is not None and current is not partition.log and broker.partition(topic, index) is partition:
            partition.replace_log(current)  # reopened where it was
        return ErrorCode.KAFKA_STORAGE_ERROR
    if broker.partition(topic, index) is partition and moved is not partition.log:
        partition.replace_log(moved)
    return ErrorCode.NONE
