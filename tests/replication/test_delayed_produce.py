"""acks=all as a delayed operation, in-process: the produce answer waits for the high
watermark, times out with REQUEST_TIMED_OUT, and reports a lost leadership or an ISR
shrunk below min.insync.replicas after the append."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from tests.storage.helpers import open_log

from moldau.handlers.produce import DelayedProduce, _await_replication, _codec, _PartitionResponse
from moldau.protocol.errors import ErrorCode
from moldau.records import RecordInput, build_batch
from moldau.replication.partition import Partition


def _leader(tmp_path: Path) -> Partition:
    partition = Partition("t", 0, uuid.uuid4(), open_log(tmp_path / "t-0"), broker_id=1, leader=-1,
                          leader_epoch=-1, replicas=[1, 2], isr=[1, 2])
    partition.apply_state(1, 3, [1, 2], [1, 2], 1)
    partition.min_insync_replicas = 2
    return partition


def _pending(partition: Partition) -> tuple[Any, list[Any]]:
    batch = build_batch([RecordInput(b"k", b"v")])
    info = partition.append_as_leader(memoryview(bytearray(batch)), -1, 0)
    result = _PartitionResponse(index=0, base_offset=info.first_offset)
    response = _codec.Response(responses=[], throttle_time_ms=0)
    return result, [response, [(result, partition, info.last_offset + 1, partition.leader_epoch)]]


def test_waits_for_the_high_watermark(tmp_path: Path) -> None:
    partition = _leader(tmp_path)
    result, (response, pending) = _pending(partition)

    async def run() -> None:
        task = asyncio.ensure_future(_await_replication(response, pending, 5000))
        await asyncio.sleep(0.05)
        assert not task.done()
        partition.update_follower_fetch(2, 1)  # the follower has offset 0
        await asyncio.wait_for(task, 1)

    asyncio.run(run())
    assert result.error_code == 0 and result.base_offset == 0


def test_times_out(tmp_path: Path) -> None:
    partition = _leader(tmp_path)
    result, (response, pending) = _pending(partition)
    asyncio.run(_await_replication(response, pending, 100))
    assert result.error_code == ErrorCode.REQUEST_TIMED_OUT


def test_lost_leadership_and_shrunk_isr(tmp_path: Path) -> None:
    partition = _leader(tmp_path)
    result, (response, pending) = _pending(partition)

    async def lose() -> None:
        task = asyncio.ensure_future(_await_replication(response, pending, 5000))
        await asyncio.sleep(0.02)
        partition.apply_state(2, 4, [1, 2], [2], 2)
        await asyncio.wait_for(task, 1)

    asyncio.run(lose())
    assert result.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER

    partition = _leader(tmp_path / "again")
    result, (response, pending) = _pending(partition)

    async def shrink() -> None:
        task = asyncio.ensure_future(_await_replication(response, pending, 5000))
        await asyncio.sleep(0.02)
        partition.apply_state(1, 3, [1, 2], [1], 2)  # the follower left: HW passes alone
        await asyncio.wait_for(task, 1)

    asyncio.run(shrink())
    assert result.error_code == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND


def test_one_high_watermark_move_completes_every_produce_it_passes(tmp_path: Path) -> None:
    partition = _leader(tmp_path)

    async def run() -> None:
        delayed = []
        for _ in range(3):
            _result, (response, pending) = _pending(partition)
            delayed.append(DelayedProduce(response, pending, 5000))
        partition.update_follower_fetch(2, 2)  # past the first two batches, not the third
        assert [d.future.done() for d in delayed] == [True, True, False]  # at once, no task
        partition.update_follower_fetch(2, 3)
        assert delayed[2].future.done()
        assert not partition._waiters  # nothing left registered

    asyncio.run(run())
