"""KIP-890 part 1 across brokers: a partition leader that is not the transaction
coordinator of a producer's transactional id verifies the producer's first batch with
that coordinator (AddPartitionsToTxn v4, ``verify_only``) before appending it.

Three brokers; ``__transaction_state`` has three partitions of one replica, so each
transactional id used here is picked for the broker that coordinates it, and the topic
has one partition led by each broker. Broker 3 runs with
``transaction.partition.verification.enable=false``. Proved: confluent-kafka's
transactional producer commits and aborts through leaders that are not its
coordinator (read_committed sees exactly the committed records); a hostile raw produce
of a transactional batch for a partition never added is refused with INVALID_TXN_STATE
by such a leader and nothing is appended, while a wrong epoch gets
INVALID_PRODUCER_EPOCH; broker 3, verification off, lets the same batch through. A
TxnOffsetCommit to a group coordinator that is not the transaction coordinator is
verified the same way (INVALID_TXN_STATE before AddOffsetsToTxn).
Cost: one cluster for the module, about 15 s.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from moldau.coordinator.group.hashing import partition_for
from moldau.protocol.codec import codec_for
from moldau.protocol.messages import ALL_APIS
from moldau.replication.client import BrokerClient

from .cluster_helpers import raw_request, start_three
from .etcd_process import ClusterBroker
from .kafka_helpers import admin_client, create_topic, read_to_end, wait_until, watermarks
from .raw_kafka import record_batch

pytestmark = pytest.mark.timeout(120)

NONE = 0
NOT_ENOUGH_REPLICAS = 19
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
RETRIABLE = {14, 15, 16, 51}  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT
TXN_PARTITIONS = 3
TOPIC = "verify"
SETTINGS = {
    "transaction.state.log.num.partitions": TXN_PARTITIONS,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.max.timeout.ms": 60000,
    "offsets.topic.num.partitions": 3,
}


@pytest.fixture(scope="module")
def three(etcd) -> Any:
    url = f"{etcd.url}/it-{uuid.uuid4().hex[:8]}"
    made: list[ClusterBroker] = []

    def start(broker_id: int, **settings: object) -> ClusterBroker:
        if broker_id == 3:
            settings["transaction.partition.verification.enable"] = "false"
        broker = ClusterBroker(broker_id, url, {"broker.session.timeout.ms": 2000, **settings})
        made.append(broker)
        return broker.start()

    try:
        brokers = start_three(start, **SETTINGS)
        bootstrap = ",".join(b.bootstrap for b in brokers.values())
        create_topic(bootstrap, TOPIC, 3)
        coordinators = _txn_state_leaders(brokers)
        topic_leaders = wait_until(lambda: _leaders(bootstrap, TOPIC, {1, 2, 3}), timeout=20,
                                   message="one leader of the topic on each broker")
        yield brokers, bootstrap, coordinators, topic_leaders
    finally:
        for broker in made:
            broker.dispose()


def _leaders(bootstrap: str, topic: str, want: set[int] | None = None) -> dict[int, int] | None:
    """broker id -> the partition of ``topic`` it leads (None until ``want`` lead)."""
    meta = admin_client(bootstrap).list_topics(topic=topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        return None
    by_broker = {p.leader: i for i, p in meta.partitions.items() if p.leader >= 0}
    return by_broker if want is None or set(by_broker) == want else None


def _txn_state_leaders(brokers: dict[int, ClusterBroker]) -> dict[int, int]:
    """broker id -> a ``__transaction_state`` partition it leads (created on first use)."""
    find = codec_for(ALL_APIS[10])
    wait_until(lambda: raw_request(brokers[1], ALL_APIS[10], 1, find.Request(key="probe", key_type=1)).error_code == 0,
               timeout=30, interval=0.2, message="the transaction coordinator is found")
    bootstrap = brokers[1].bootstrap
    return wait_until(lambda: _leaders(bootstrap, "__transaction_state"), timeout=20, message="txn state leaders")


def _txn_id_on(coordinators: dict[int, int], broker_id: int, prefix: str) -> str:
    """A transactional id coordinated by ``broker_id``."""
    return next(f"{prefix}-{n}" for n in range(10_000)
                if partition_for(f"{prefix}-{n}", TXN_PARTITIONS) == coordinators[broker_id])


def _call(broker: ClusterBroker, key: int, version: int, **fields: Any) -> Any:
    """A request retried while its coordinator answers retriable errors."""
    request = codec_for(ALL_APIS[key]).Request(**fields)
    deadline = time.monotonic() + 20
    while True:
        response = raw_request(broker, ALL_APIS[key], version, request)
        code = getattr(response, "error_code", 0)
        if code not in RETRIABLE or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def _log_end(bootstrap: str, partition: int) -> int:
    return watermarks(bootstrap, TOPIC, partition, **{"isolation.level": "read_uncommitted"})[1]


def _produce_request(txn_id: str, partition: int, pid: int, epoch: int, seq: int) -> Any:
    codec = codec_for(ALL_APIS[0])
    TopicData = codec.Request.of("topic_data")
    batch = record_batch([b"raw-%d" % seq], int(time.time() * 1000), producer_id=pid, producer_epoch=epoch,
                         base_sequence=seq, transactional=True)
    request = codec.Request(transactional_id=txn_id, acks=-1, timeout_ms=5000, topic_data=[
        TopicData(name=TOPIC, partition_data=[TopicData.of("partition_data")(index=partition, records=batch)])])
    return request


def _produce(broker: ClusterBroker, txn_id: str, partition: int, pid: int, epoch: int, seq: int) -> int:
    """A transactional batch of one record (Produce v9); the partition's error code."""
    request = _produce_request(txn_id, partition, pid, epoch, seq)
    return raw_request(broker, ALL_APIS[0], 9, request).responses[0].partition_responses[0].error_code


def _add(broker: ClusterBroker, txn_id: str, pid: int, epoch: int, partition: int) -> list[int]:
    add = _call(broker, 24, 3, v3_and_below_transactional_id=txn_id, v3_and_below_producer_id=pid,
                v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
                    codec_for(ALL_APIS[24]).Request.of("v3_and_below_topics")(name=TOPIC, partitions=[partition])])
    return [p.partition_error_code for t in add.results_by_topic_v3_and_below for p in t.results_by_partition]


def test_a_producer_commits_and_aborts_through_leaders_that_do_not_coordinate_it(three) -> None:
    brokers, bootstrap, coordinators, leaders = three
    coordinator, other = (1, 2) if 1 in coordinators else (2, 1)
    txn_id = _txn_id_on(coordinators, coordinator, "eos")
    # broker `other` verifies remotely; the coordinator's own partition is checked in-process
    parts = [leaders[other], leaders[coordinator]]
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "socket.timeout.ms": 5000})
    p.init_transactions(30)
    for round_, commit in enumerate((True, False, True)):
        p.begin_transaction()
        for i in range(10):
            p.produce(TOPIC, value=b"%s-%d-%d" % (b"c" if commit else b"a", round_, i), partition=parts[i % 2])
        if commit:
            p.commit_transaction(30)
        else:
            p.flush(10)
            p.abort_transaction(30)
    expected = sorted(b"c-%d-%d" % (r, i) for r in (0, 2) for i in range(10))
    assert sorted(read_to_end(bootstrap, TOPIC, 3)) == expected
    assert len(read_to_end(bootstrap, TOPIC, 3, isolation="read_uncommitted")) == 30


def test_a_batch_for_a_partition_never_added_is_refused_by_a_remote_leader(three) -> None:
    brokers, bootstrap, coordinators, leaders = three
    coordinator, other = (1, 2) if 1 in coordinators else (2, 1)
    txn_id = _txn_id_on(coordinators, coordinator, "hostile")
    init = _call(brokers[coordinator], 22, 1, transactional_id=txn_id, transaction_timeout_ms=60000)
    assert init.error_code == NONE
    pid, epoch = init.producer_id, init.producer_epoch
    target = leaders[other]
    before = _log_end(bootstrap, target)

    assert _produce(brokers[other], txn_id, target, pid, epoch, 0) == INVALID_TXN_STATE
    assert _produce(brokers[other], txn_id, target, pid, epoch + 1, 0) == INVALID_PRODUCER_EPOCH
    assert _log_end(bootstrap, target) == before  # nothing appended

    assert _add(brokers[coordinator], txn_id, pid, epoch, target) == [NONE]
    assert _produce(brokers[other], txn_id, target, pid, epoch, 0) == NONE  # now it is in the transaction
    assert _log_end(bootstrap, target) == before + 1
    end = _call(brokers[coordinator], 26, 1, transactional_id=txn_id, producer_id=pid, producer_epoch=epoch,
                committed=False)
    assert end.error_code == NONE
    deadline = time.monotonic() + 10
    while (code := _produce(brokers[other], txn_id, target, pid, epoch, 1)) == NOT_ENOUGH_REPLICAS:
        assert time.monotonic() < deadline
        time.sleep(0.05)  # the abort still completing at the coordinator: retriable
    assert code == INVALID_TXN_STATE  # the transaction is over: a late batch opens none


def test_verification_off_lets_the_batch_through(three) -> None:
    brokers, bootstrap, coordinators, leaders = three
    coordinator = 1 if 1 in coordinators else 2
    txn_id = _txn_id_on(coordinators, coordinator, "unchecked")
    init = _call(brokers[coordinator], 22, 1, transactional_id=txn_id, transaction_timeout_ms=60000)
    target = leaders[3]
    before = _log_end(bootstrap, target)
    assert _produce(brokers[3], txn_id, target, init.producer_id, init.producer_epoch, 0) == NONE
    assert _log_end(bootstrap, target) == before + 1


def test_many_producers_verified_at_once(three) -> None:
    """Twelve transactional ids of one coordinator produce at the same moment to a
    leader elsewhere (their verifications share requests to the coordinator): the six
    whose partition was added are appended, the six others refused."""
    brokers, bootstrap, coordinators, leaders = three
    coordinator, other = (1, 2) if 1 in coordinators else (2, 1)
    target = leaders[other]
    ids = [_txn_id_on(coordinators, coordinator, f"many{n}") for n in range(12)]
    producers = {}
    for n, txn_id in enumerate(ids):
        init = _call(brokers[coordinator], 22, 1, transactional_id=txn_id, transaction_timeout_ms=60000)
        producers[txn_id] = (init.producer_id, init.producer_epoch)
        if n % 2 == 0:
            assert _add(brokers[coordinator], txn_id, *producers[txn_id], target) == [NONE]
    before = _log_end(bootstrap, target)
    leader = brokers[other]

    async def one(txn_id: str) -> int:
        client = BrokerClient(leader.host, leader.port, "it-many")
        try:
            request = _produce_request(txn_id, target, *producers[txn_id], 0)
            response = await client.request(ALL_APIS[0], 9, request, timeout=20)
            return response.responses[0].partition_responses[0].error_code
        finally:
            await client.close()

    async def all_at_once() -> list[int]:
        return await asyncio.gather(*(one(t) for t in ids))

    codes = asyncio.run(all_at_once())
    assert codes == [NONE if n % 2 == 0 else INVALID_TXN_STATE for n in range(12)]
    assert _log_end(bootstrap, target) == before + 6


def test_a_txn_offset_commit_is_verified_by_a_remote_group_coordinator(three) -> None:
    brokers, bootstrap, coordinators, leaders = three
    coordinator, other = (1, 2) if 1 in coordinators else (2, 1)
    find = codec_for(ALL_APIS[10])
    wait_until(lambda: raw_request(brokers[1], ALL_APIS[10], 1, find.Request(key="g", key_type=0)).error_code == 0,
               timeout=30, interval=0.2, message="the group coordinator is found")
    offsets_leaders = wait_until(lambda: _leaders(bootstrap, "__consumer_offsets", {1, 2, 3}), timeout=20,
                                 message="__consumer_offsets leaders")
    group = next(f"group-{n}" for n in range(10_000) if partition_for(f"group-{n}", 3) == offsets_leaders[other])
    txn_id = _txn_id_on(coordinators, coordinator, "offsets")
    init = _call(brokers[coordinator], 22, 1, transactional_id=txn_id, transaction_timeout_ms=60000)
    pid, epoch = init.producer_id, init.producer_epoch
    Commit = codec_for(ALL_APIS[28]).Request
    Topic = Commit.of("topics")

    def commit() -> int:
        request = Commit(transactional_id=txn_id, group_id=group, producer_id=pid, producer_epoch=epoch, topics=[
            Topic(name=TOPIC, partitions=[Topic.of("partitions")(partition_index=0, committed_offset=5,
                                                                   committed_leader_epoch=-1, committed_metadata="")])])
        response = raw_request(brokers[other], ALL_APIS[28], 2, request)
        return response.topics[0].partitions[0].error_code

    assert commit() == INVALID_TXN_STATE  # AddOffsetsToTxn first, or no marker would ever come
    added = _call(brokers[coordinator], 25, 1, transactional_id=txn_id, producer_id=pid, producer_epoch=epoch,
                  group_id=group)
    assert added.error_code == NONE
    assert commit() == NONE
