"""Writing operator changes: compare-and-swap races and replicas reassigned away.

An in-process broker (id 0) on an in-memory store that lists three live brokers, so
that partitions can name brokers 1 and 2 (which do not exist: nothing here needs them
to fetch or to answer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.controller.operations import PREFERRED, alter_reassignment, elect_leader
from moldau.metastore.memory import MemoryMetaStore
from moldau.metastore.store import BrokerInfo, ControllerInfo
from moldau.protocol.errors import ErrorCode, KafkaError


class ThreeBrokers(MemoryMetaStore):
    def brokers(self) -> list[BrokerInfo]:
        return [BrokerInfo(i, "127.0.0.1", 9000 + i) for i in range(3)]

    def controller(self) -> ControllerInfo:
        return ControllerInfo(0, 1)  # this broker (a non-controller would forward creations)


async def _broker(path: Path) -> tuple[Broker, ThreeBrokers]:
    store = ThreeBrokers()
    broker = Broker(BrokerConfig({}), path, store, Endpoint("127.0.0.1", 9))
    await broker.start()
    plan = broker.controller.plan_topic("t", -1, -1, {}, {0: [1, 0], 1: [0, 2]})
    await broker.controller.create_topic(plan)
    return broker, store


async def _stop(broker: Broker) -> None:
    """Stopping is prompt although the fetcher of partition 0 (led by broker 1, which
    is not there) keeps failing to connect: a cancellation that Python 3.11's wait_for
    swallows in a failed connect must not leave it dialling forever."""
    began = time.monotonic()
    await broker.stop()
    assert time.monotonic() - began < 5


def _run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario, 30))


def test_a_lost_race_is_decided_again_on_the_stored_state(tmp_path: Path) -> None:
    async def scenario() -> None:
        broker, store = await _broker(tmp_path)
        first = broker.topics["t"].partitions[0]
        assert first.leader == 1
        seen = dataclasses.replace(first, leader=0, leader_epoch=1, partition_epoch=1)
        await store.alter_partition("t", 0, seen, 0)
        broker.apply_partition_state("t", 0, seen)  # broker 0 leads, 1 is preferred
        # another broker moved the partition on meanwhile: the ISR shrank to [0]
        moved = dataclasses.replace(seen, isr=[0], partition_epoch=2)
        await store.alter_partition("t", 0, moved, 1)
        # decided on what we saw, the election would make 1 leader; the write loses
        # the compare-and-swap and, decided again on the stored state, 1 is not in the ISR
        with pytest.raises(KafkaError) as raised:
            await elect_leader(broker, "t", 0, PREFERRED)
        assert raised.value.code == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
        stored = (await store.get_topic("t")).partitions[0]
        assert stored == moved
        await _stop(broker)

    _run(scenario())


def test_a_replica_reassigned_away_stops_and_deletes_its_log(tmp_path: Path) -> None:
    async def scenario() -> None:
        broker, store = await _broker(tmp_path)
        assert broker.partition("t", 1).is_leader
        log_dir = broker.partition("t", 1).log.dir
        assert log_dir.exists()
        await alter_reassignment(broker, "t", 1, [2])  # a shrink completes at once
        stored = (await store.get_topic("t")).partitions[1]
        assert (stored.replicas, stored.isr, stored.leader, stored.reassigning) == ([2], [2], 2, False)
        assert stored.leader_epoch == 1 and stored.partition_epoch == 1
        assert broker.partition("t", 1) is None and not log_dir.exists()
        assert broker.topics["t"].partitions[1] == stored
        # the partition comes back here by another reassignment: a fresh, empty log
        await alter_reassignment(broker, "t", 1, [2, 0])
        assert broker.partition("t", 1) is not None and broker.partition("t", 1).log.log_end_offset == 0
        assert broker.topics["t"].partitions[1].adding_replicas == [0]
        await _stop(broker)

    _run(scenario())
