"""The transaction coordinator on its own, against a small real host: real Partitions on
real logs for ``__transaction_state`` and the data topics, a producer-id counter, and
a marker path that writes real control batches to those partitions (and can be told
to fail, like an unreachable leader). No broker, no sockets, no metadata store.

What is proven: Kafka's state machine and error codes (fencing, KIP-360, EndTxn retries
and misuse, CONCURRENT_TRANSACTIONS while markers are pending), the markers in the
partitions' logs, state surviving a second life (a decided transaction finished by the
next coordinator), leadership, timeouts, expiration, and the group coordinator's
pending transactional offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from moldau.config.broker import BrokerConfig
from moldau.coordinator.group import OFFSETS_TOPIC, GroupCoordinator, OffsetCommit
from moldau.coordinator.transaction import TXN_TOPIC, TransactionCoordinator, TxnState
from moldau.coordinator.transaction.records import (
    TxnLogValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from moldau.metastore.store import PartitionState, TopicRecord
from moldau.ports import TransactionCoordinatorHost, TxnMarker
from moldau.protocol.errors import ErrorCode
from moldau.records import iter_batches
from moldau.replication.partition import Partition

from .test_coordinator_alone import NODE, OffsetsHost

TXN_CONFIG = {
    "transaction.state.log.num.partitions": "3",
    "offsets.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
    "transaction.max.timeout.ms": "60000",
    "transactional.id.expiration.ms": "3600000",
}


class Counter:
    """Producer ids that never repeat (the ProducerIdManager's part)."""

    def __init__(self, start: int = 1000) -> None:
        self._ids = itertools.count(start)

    async def generate(self) -> int:
        return next(self._ids)


class Markers:
    """The marker path: the partition leader's marker write on this host's partitions
    (what WriteTxnMarkers does), the group coordinator told as the broker's marker
    listener; ``failing`` makes every send answer NOT_LEADER_OR_FOLLOWER."""

    def __init__(self, host: TxnHost) -> None:
        self.host = host
        self.failing = False
        self.sent: list[TxnMarker] = []

    async def send_txn_markers(self, broker_id: int, marker: TxnMarker) -> dict[tuple[str, int], ErrorCode]:
        if self.failing:
            return {tp: ErrorCode.NOT_LEADER_OR_FOLLOWER for tp in marker.partitions}
        self.sent.append(marker)
        out = {}
        for tp in marker.partitions:
            partition = self.host.partition(*tp)
            partition.write_txn_marker(marker.producer_id, marker.producer_epoch, marker.committed,
                                       marker.coordinator_epoch, 0)
            if tp[0] == OFFSETS_TOPIC and self.host.groups is not None:
                self.host.groups.txn_marker_written(tp[0], tp[1], marker.producer_id, marker.producer_epoch,
                                                    marker.committed)
            out[tp] = ErrorCode.NONE
        return out


class TxnHost(OffsetsHost):
    """OffsetsHost plus what TransactionCoordinatorHost adds: a node id, producer ids,
    the marker path, and a data topic the transactions write to."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.config = BrokerConfig(TXN_CONFIG)
        self.node_id = NODE
        self.producer_ids = Counter()
        self.txn_markers = Markers(self)
        self.groups: GroupCoordinator | None = None
        self.clock = 1_000_000.0
        self.apply(TopicRecord("orders", uuid.uuid4(), {
            i: PartitionState(leader=NODE, replicas=[NODE], isr=[NODE]) for i in range(2)
        }, {}))

    def elect_txn(self, index: int, leader: int) -> None:
        topic = self.topics[TXN_TOPIC]
        old = topic.partitions[index]
        topic.partitions[index] = PartitionState(leader=leader, leader_epoch=old.leader_epoch + 1, replicas=[NODE, 1], isr=[leader])
        self.apply(topic)


def coordinator_on(host: TxnHost) -> TransactionCoordinator:
    seam: TransactionCoordinatorHost = host
    assert isinstance(seam, TransactionCoordinatorHost)
    coordinator = TransactionCoordinator(seam, clock=lambda: host.clock)
    host.listeners.append(coordinator)
    return coordinator


@contextlib.asynccontextmanager
async def started(host: TxnHost) -> AsyncIterator[TransactionCoordinator]:
    """A coordinator started on ``host``; stopped, and the host's logs shut down, on the way out."""
    coordinator = coordinator_on(host)
    await coordinator.start()
    try:
        yield coordinator
    finally:
        await coordinator.stop()
        host.logs.shutdown()


async def settle(coordinator: TransactionCoordinator, txn_id: str, state: TxnState) -> None:
    for _ in range(500):
        meta = coordinator.txns.get(txn_id)
        if meta is not None and meta.state is state and not meta.pending:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{txn_id} never reached {state.name}: {coordinator.txns.get(txn_id)}")


async def loaded(coordinator: TransactionCoordinator) -> None:
    for _ in range(500):
        if not coordinator._loading:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not loaded")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def markers_in(partition: Partition) -> list[tuple[int, int]]:
    """(producer id, epoch) of each control batch in the partition, in log order."""
    data = partition.log.read(0, 1 << 20).slice.read()
    return [(b.producer_id, b.producer_epoch) for b in iter_batches(data) if b.is_control]


ORDERS = [("orders", 0), ("orders", 1)]


def test_the_transaction_log_records_round_trip_and_read_kafkas_flexible_version():
    value = TxnLogValue(7, 3, 60000, TxnState.ONGOING, {"orders": [0, 1]}, 5, 4)
    assert decode_value(encode_value(value)) == value
    assert decode_key(encode_key("tx-é")) == "tx-é"
    empty = decode_value(encode_value(TxnLogValue(7, 3, 60000, TxnState.COMPLETE_COMMIT)))
    assert empty.partitions == {} and empty.state is TxnState.COMPLETE_COMMIT
    # version 1 as Kafka 4 writes it: compact array/strings, tagged fields 0 and 2
    v1 = struct.pack(">hqhib", 1, 9, 2, 1000, 1) + bytes([2, 7]) + b"orders" + bytes([2]) + struct.pack(">i", 3)
    v1 += bytes([0]) + struct.pack(">qq", 11, 10)
    v1 += bytes([2, 0, 8]) + struct.pack(">q", 8) + bytes([2, 2]) + struct.pack(">h", 2)
    decoded = decode_value(v1)
    assert (decoded.producer_id, decoded.producer_epoch, decoded.state) == (9, 2, TxnState.ONGOING)
    assert decoded.partitions == {"orders": [3]} and decoded.previous_producer_id == 8
    assert decoded.client_transaction_version == 2 and decoded.start_ms == 10


def test_commit_abort_fencing_and_kafkas_answers(tmp_path):
    async def scenario() -> None:
        host = TxnHost(tmp_path)
        async with started(host) as c:
            assert (await c.init_producer_id("tx", 0))[0] is ErrorCode.INVALID_TRANSACTION_TIMEOUT
            assert (await c.init_producer_id("tx", 60001))[0] is ErrorCode.INVALID_TRANSACTION_TIMEOUT
            code, pid, epoch = await c.init_producer_id("tx", 10000)
            assert (code, epoch) == (ErrorCode.NONE, 0)
            assert await c.end_txn("tx", pid, 0, True) is ErrorCode.INVALID_TXN_STATE  # nothing begun
            assert await c.add_partitions("tx", pid + 1, 0, ORDERS) is ErrorCode.INVALID_PRODUCER_ID_MAPPING
            assert await c.add_partitions("tx", pid, 0, ORDERS) is ErrorCode.NONE
            assert c.txns["tx"].state is TxnState.ONGOING
            assert c.verify_partitions("tx", pid, 0, [("orders", 0)]) == {("orders", 0): ErrorCode.NONE}
            assert c.verify_partitions("tx", pid, 0, [("other", 0)]) == {("other", 0): ErrorCode.INVALID_TXN_STATE}
            assert await c.end_txn("tx", pid, 0, True) is ErrorCode.NONE
            await settle(c, "tx", TxnState.COMPLETE_COMMIT)
            for tp in ORDERS:
                assert markers_in(host.partition(*tp)) == [(pid, 0)]
            assert await c.end_txn("tx", pid, 0, True) is ErrorCode.NONE  # a retried commit
            assert await c.end_txn("tx", pid, 0, False) is ErrorCode.INVALID_TXN_STATE

            assert await c.add_partitions("tx", pid, 0, [("orders", 1)]) is ErrorCode.NONE
            assert await c.end_txn("tx", pid, 0, False) is ErrorCode.NONE
            await settle(c, "tx", TxnState.COMPLETE_ABORT)
            assert markers_in(host.partition("orders", 1)) == [(pid, 0), (pid, 0)]
            assert await c.end_txn("tx", pid, 0, True) is ErrorCode.INVALID_TXN_STATE

            # a second producer with the same id: epoch 1; the first is fenced everywhere
            code, pid2, epoch2 = await c.init_producer_id("tx", 10000)
            assert (code, pid2, epoch2) == (ErrorCode.NONE, pid, 1)
            assert await c.add_partitions("tx", pid, 0, ORDERS) is ErrorCode.PRODUCER_FENCED
            assert await c.end_txn("tx", pid, 0, True) is ErrorCode.PRODUCER_FENCED

    run(scenario())


def test_a_restarted_producer_aborts_the_open_transaction_first(tmp_path):
    async def scenario() -> None:
        host = TxnHost(tmp_path)
        async with started(host) as c:
            _, pid, _ = await c.init_producer_id("tx", 10000)
            assert await c.add_partitions("tx", pid, 0, ORDERS) is ErrorCode.NONE
            host.txn_markers.failing = True  # the leaders cannot be reached for a while
            assert await c.init_producer_id("tx", 10000) == (ErrorCode.CONCURRENT_TRANSACTIONS, -1, -1)
            meta = c.txns["tx"]
            assert (meta.state, meta.producer_epoch) == (TxnState.PREPARE_ABORT, 1)  # fenced, aborting
            await asyncio.sleep(0.1)
            assert await c.init_producer_id("tx", 10000) == (ErrorCode.CONCURRENT_TRANSACTIONS, -1, -1)
            assert await c.add_partitions("tx", pid, 0, ORDERS) is ErrorCode.PRODUCER_FENCED
            host.txn_markers.failing = False  # retried until written
            await settle(c, "tx", TxnState.COMPLETE_ABORT)
            assert markers_in(host.partition("orders", 0)) == [(pid, 1)]  # the abort carries the new epoch
            assert await c.init_producer_id("tx", 10000) == (ErrorCode.NONE, pid, 2)

    run(scenario())


def test_kip_360_epoch_bump_and_its_retry(tmp_path):
    async def scenario() -> None:
        host = TxnHost(tmp_path)
        async with started(host) as c:
            _, pid, _ = await c.init_producer_id("tx", 10000)
            assert await c.init_producer_id("tx", 10000, pid, 0) == (ErrorCode.NONE, pid, 1)
            assert await c.init_producer_id("tx", 10000, pid, 0) == (ErrorCode.NONE, pid, 1)  # retried
            assert (await c.init_producer_id("tx", 10000, pid, 5))[0] is ErrorCode.PRODUCER_FENCED
            assert (await c.init_producer_id("tx", 10000, pid + 7, 1))[0] is ErrorCode.PRODUCER_FENCED
            # an exhausted epoch moves to a new producer id
            c.txns["tx"].producer_epoch = 32766
            code, new_pid, epoch = await c.init_producer_id("tx", 10000, pid, 32766)
            assert code is ErrorCode.NONE and new_pid != pid and epoch == 0
            assert await c.init_producer_id("tx", 10000, pid, 32766) == (ErrorCode.NONE, new_pid, 0)  # retried
            # a new incarnation (no id named) forgets the last epoch: the old one's retry is fenced
            assert await c.init_producer_id("tx", 10000) == (ErrorCode.NONE, new_pid, 1)
            assert (await c.init_producer_id("tx", 10000, new_pid, 0))[0] is ErrorCode.PRODUCER_FENCED
            # with a transaction open, the named id is checked, then (Kafka's order) the
            # transaction aborted before the epoch is: a stale epoch is fenced after that
            assert await c.add_partitions("tx", new_pid, 1, ORDERS) is ErrorCode.NONE
            assert (await c.init_producer_id("tx", 10000, new_pid + 1, 1))[0] is ErrorCode.PRODUCER_FENCED
            assert c.txns["tx"].state is TxnState.ONGOING
            assert (await c.init_producer_id("tx", 10000, new_pid, 1))[0] is ErrorCode.CONCURRENT_TRANSACTIONS
            await settle(c, "tx", TxnState.COMPLETE_ABORT)
            assert (await c.init_producer_id("tx", 10000, new_pid, 1))[0] is ErrorCode.PRODUCER_FENCED
            assert await c.init_producer_id("tx", 10000, new_pid, 2) == (ErrorCode.NONE, new_pid, 3)

    run(scenario())


def test_a_decided_transaction_is_finished_by_the_next_life(tmp_path):
    async def first_life() -> tuple[dict[str, TopicRecord], int]:
        host = TxnHost(tmp_path)
        async with started(host) as c:
            _, pid, _ = await c.init_producer_id("tx", 10000)
            _, other, _ = await c.init_producer_id("other", 20000)
            assert await c.add_partitions("tx", pid, 0, ORDERS) is ErrorCode.NONE
            assert await c.add_partitions("other", other, 0, [("orders", 0)]) is ErrorCode.NONE
            host.txn_markers.failing = True
            assert await c.end_txn("tx", pid, 0, True) is ErrorCode.NONE  # decided, markers stuck
            assert await c.end_txn("tx", pid, 0, True) is ErrorCode.CONCURRENT_TRANSACTIONS
            assert c.txns["tx"].state is TxnState.PREPARE_COMMIT
            return dict(host.topics), pid

    topics, pid = run(first_life())

    async def second_life() -> None:
        host = TxnHost(tmp_path)
        for name in (TXN_TOPIC,):
            host.apply(topics[name])
        async with started(host) as c:
            await loaded(c)
            await settle(c, "tx", TxnState.COMPLETE_COMMIT)
            assert host.txn_markers.sent[0].committed and host.txn_markers.sent[0].producer_id == pid
            other = c.txns["other"]
            assert (other.state, other.partitions, other.timeout_ms) == (TxnState.ONGOING, {("orders", 0)}, 20000)

    run(second_life())


def test_leadership_timeouts_expiration_and_listing(tmp_path):
    async def scenario() -> None:
        host = TxnHost(tmp_path)
        async with started(host) as c:
            _, pid, _ = await c.init_producer_id("tx", 10000)
            _, idle, _ = await c.init_producer_id("idle", 10000)
            assert await c.add_partitions("tx", pid, 0, ORDERS) is ErrorCode.NONE
            code, unknown, found = c.list_transactions(["Ongoing", "Bogus"], [])
            assert (code, unknown, [d.transactional_id for d in found]) == (ErrorCode.NONE, ["Bogus"], ["tx"])
            assert [d.transactional_id for d in c.list_transactions([], [idle])[2]] == ["idle"]
            assert c.list_transactions([], [], duration_ms=5000)[2] == []
            assert [d.transactional_id for d in c.list_transactions([], [], pattern="t.")[2]] == ["tx"]
            code, description = c.describe("tx")
            assert code is ErrorCode.NONE and description.state == "Ongoing" and description.partitions == ORDERS
            assert c.describe("nope")[0] is ErrorCode.TRANSACTIONAL_ID_NOT_FOUND

            host.clock += 9  # not yet
            assert c.abort_timed_out() == 0
            host.clock += 2  # past transaction.timeout.ms: aborted, producer fenced
            assert c.abort_timed_out() == 1
            await settle(c, "tx", TxnState.COMPLETE_ABORT)
            assert await c.end_txn("tx", pid, 0, True) is ErrorCode.PRODUCER_FENCED
            assert markers_in(host.partition("orders", 1)) == [(pid, 1)]

            index = c.partition_of("tx")
            host.elect_txn(index, leader=1)
            assert "tx" not in c.txns and c.describe("tx")[0] is ErrorCode.NOT_COORDINATOR
            host.elect_txn(index, leader=NODE)
            await loaded(c)
            assert c.txns["tx"].state is TxnState.COMPLETE_ABORT

            host.clock += 3600  # transactional.id.expiration.ms
            assert c.expire_transactional_ids() == 2
            assert c.describe("tx")[0] is ErrorCode.TRANSACTIONAL_ID_NOT_FOUND

    run(scenario())


def test_transactional_offsets_wait_for_the_marker_also_across_a_reload(tmp_path):
    async def first_life() -> dict[str, TopicRecord]:
        host = TxnHost(tmp_path)
        groups = GroupCoordinator(host)
        host.groups = groups
        host.listeners.append(groups)
        txns = coordinator_on(host)
        await groups.start()
        await txns.start()
        try:
            await groups.ready("g")
            index = groups.partition_of("g")
            for name, offset in (("committer", 10), ("aborter", 20), ("undecided", 30)):
                _, pid, _ = await txns.init_producer_id(name, 10000)
                assert await txns.add_partitions(name, pid, 0, [(OFFSETS_TOPIC, index)]) is ErrorCode.NONE
                assert groups.txn_commit_offsets(
                    "g", pid, 0, -1, "", None, [OffsetCommit("orders", offset // 10, offset, -1, "")]
                ) == [ErrorCode.NONE]
            assert groups.fetch_offsets("g", [("orders", [1])])[0][1] == [(1, None)]  # pending: invisible
            assert groups.pending_txn_partitions("g") == {("orders", 1), ("orders", 2), ("orders", 3)}
            assert await txns.end_txn("committer", txns.txns["committer"].producer_id, 0, True) is ErrorCode.NONE
            assert await txns.end_txn("aborter", txns.txns["aborter"].producer_id, 0, False) is ErrorCode.NONE
            await settle(txns, "committer", TxnState.COMPLETE_COMMIT)
            await settle(txns, "aborter", TxnState.COMPLETE_ABORT)
            [(_, rows)] = groups.fetch_offsets("g", [("orders", [1, 2, 3])])
            assert [(p, v.offset if v else None) for p, v in rows] == [(1, 10), (2, None), (3, None)]
            return dict(host.topics)
        finally:
            await txns.stop()
            await groups.stop()
            host.logs.shutdown()

    topics = run(first_life())

    async def second_life() -> None:
        host = TxnHost(tmp_path)
        host.apply(topics[OFFSETS_TOPIC])
        groups = GroupCoordinator(host)
        await groups.start()
        try:
            for _ in range(500):
                if not groups._loading:
                    break
                await asyncio.sleep(0.01)
            [(_, rows)] = groups.fetch_offsets("g", [("orders", [1, 2, 3])])
            assert [(p, v.offset if v else None) for p, v in rows] == [(1, 10), (2, None), (3, None)]
            assert groups.pending_txn_partitions("g") == {("orders", 3)}  # still undecided
        finally:
            await groups.stop()
            host.logs.shutdown()

    run(second_life())
