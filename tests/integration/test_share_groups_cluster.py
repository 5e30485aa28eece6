"""Share groups in a cluster: a share-partition whose data partition and
``__share_group_state`` partition have different leaders is persisted through the share
coordinator (Read/WriteShareGroupState between brokers), and its state moves with the
data partition's leadership.

Three brokers; ``__share_group_state`` has three partitions of three replicas. The topic
has one partition on two replicas (its leader first) that exclude the broker leading
the share-state partition of ``(group, topic id, 0)``, so every write of both leaders
goes over the wire. confluent-kafka ShareConsumers (share_worker.py, under
``.venv-share``) accept a first part of the records; a second member holds records of
the second part (in flight) and is killed; then the partition's leader is stopped.
The new leader reads the state before it serves ShareFetch: the next member gets every
record of the second part (the held ones with a delivery count above 1) and none of the
accepted ones; then the share coordinator stops too, and the state partition's new leader
answers ReadShareGroupState with the state it loaded (this test runs last: it stops two
brokers). Before it: the state APIs answered
by raw requests (NOT_COORDINATOR, merge, FENCED_STATE_EPOCH, FENCED_LEADER_EPOCH, delete,
FindCoordinator key type 2, DescribeShareGroupOffsets through ReadShareGroupStateSummary),
and a share group with ``share.isolation.level=read_committed`` reading a transactional
producer's records: committed ones only, an open transaction's once it commits, an
aborted one's never. Cost: one cluster for the module, about 20 s (17-19 s measured).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer, TopicCollection
from confluent_kafka.admin import NewTopic

from moldau.coordinator.group.hashing import partition_for
from moldau.coordinator.share.state import coordinator_key
from moldau.protocol.codec import codec_for
from moldau.protocol.messages import ALL_APIS

from .cluster_helpers import raw_request, start_three
from .etcd_process import ClusterBroker
from .kafka_helpers import admin_client, create_topic, wait_until
from .test_share_groups import Worker, _produce, _set_group_configs, _synced, share_python

pytestmark = pytest.mark.timeout(180)

STATE_PARTITIONS = 3
SETTINGS = {
    "share.coordinator.state.topic.num.partitions": STATE_PARTITIONS,
    "share.coordinator.state.topic.replication.factor": 3,
    "group.share.record.lock.duration.ms": 3000,
    "offsets.topic.num.partitions": 3,
    "offsets.topic.replication.factor": 3,  # the group outlives the stopped broker
    "transaction.state.log.num.partitions": 3,
}
TOPIC = "shared-cluster"
FIRST, SECOND = 300, 300


@pytest.fixture(scope="module")
def three(etcd) -> Any:
    share_python()  # skip before starting anything when there is no ShareConsumer
    url = f"{etcd.url}/it-{uuid.uuid4().hex[:8]}"
    made: list[ClusterBroker] = []

    def start(broker_id: int, **settings: object) -> ClusterBroker:
        broker = ClusterBroker(broker_id, url, {"broker.session.timeout.ms": 2000, **settings})
        made.append(broker)
        return broker.start()

    try:
        yield start_three(start, **SETTINGS)
    finally:
        for broker in made:
            broker.dispose()


def _state_leaders(brokers: dict[int, ClusterBroker]) -> dict[int, int]:
    """Have ``__share_group_state`` created (DescribeShareGroupOffsets waits for it) and
    return its partitions' leaders."""
    api = ALL_APIS[90]
    request = codec_for(api).Request
    group = request.of("groups")
    for broker in brokers.values():
        raw_request(broker, api, 1, request(groups=[group(group_id="warm-up", topics=None)]))

    def leaders() -> dict[int, int] | None:
        meta = admin_client(brokers[1].bootstrap).list_topics(timeout=10).topics.get("__share_group_state")
        if meta is None or len(meta.partitions) != STATE_PARTITIONS:
            return None
        found = {i: p.leader for i, p in meta.partitions.items()}
        return found if all(v > 0 for v in found.values()) else None

    return wait_until(leaders, timeout=20, message="__share_group_state has leaders")  # type: ignore[return-value]


def _leaders_of(broker: ClusterBroker, topic: str) -> dict[int, int] | None:
    meta = admin_client(broker.bootstrap).list_topics(timeout=10).topics.get(topic)
    if meta is None or not meta.partitions:
        return None
    found = {i: p.leader for i, p in meta.partitions.items()}
    return found if all(v > 0 for v in found.values()) else None


def _topic_id(bootstrap: str, topic: str) -> uuid.UUID:
    admin = admin_client(bootstrap)
    described = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=10)
    tid = described.topic_id
    mask = (1 << 64) - 1
    return uuid.UUID(int=((tid.get_most_significant_bits() & mask) << 64) | (tid.get_least_significant_bits() & mask))


def _leader(bootstrap: str, topic: str) -> int | None:
    meta = admin_client(bootstrap).list_topics(topic=topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None or 0 not in meta.partitions:
        return None
    return meta.partitions[0].leader


def _transaction(producer: Producer, topic: str, count: int, tag: str) -> list[int]:
    """Produce ``count`` records in the producer's open transaction; their offsets."""
    offsets: list[int] = []
    for i in range(count):
        producer.produce(topic, value=f"{tag}-{i}".encode(), partition=0,
                         on_delivery=lambda err, msg: offsets.append(msg.offset()) if err is None else None)
    assert producer.flush(30) == 0
    assert len(offsets) == count
    return offsets


def test_read_committed_share_fetch_skips_aborted_and_waits_for_open_transactions(three):
    brokers = three
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    topic, group = "shared-txn", "sc-txn"
    create_topic(bootstrap, topic, 1)
    _set_group_configs(bootstrap, group, share_isolation_level="read_committed", share_auto_offset_reset="earliest")
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "sc-txn-producer", "log_level": 3})
    producer.init_transactions(30)
    committed: list[int] = []
    aborted: list[int] = []
    for tag, target, commit in (("c1", committed, True), ("a1", aborted, False), ("c2", committed, True)):
        producer.begin_transaction()
        target += _transaction(producer, topic, 20, tag)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    producer.begin_transaction()
    pending = _transaction(producer, topic, 10, "open")  # beyond the last stable offset

    worker = Worker(bootstrap, group, topic, "--idle", "8")
    try:
        wait_until(lambda: set(committed) <= set(worker.accepted()), timeout=40,
                   message="the committed records accepted")
        time.sleep(1.0)
        assert not {r["o"] for r in worker.records} & set(pending), "an open transaction's record was delivered"
        producer.commit_transaction(30)
        wait_until(lambda: set(pending) <= set(worker.accepted()), timeout=30,
                   message="the records of the transaction committed later")
        delivered = {r["o"] for r in worker.records}
        assert not delivered & set(aborted), "a record of an aborted transaction was delivered"
        accepted = worker.accepted()
        assert len(accepted) == len(set(accepted))
    finally:
        worker.kill()



def _state_call(broker: ClusterBroker, key: int, group: str, tid: uuid.UUID, **fields: Any) -> Any:
    """One Read/Write/DeleteShareGroupState v0 for partition 0 of topic ``tid``: the
    partition result."""
    api = ALL_APIS[key]
    request = codec_for(api).Request
    topic = request.of("topics")
    partition = topic.of("partitions")
    if "state_batches" in fields:
        batch = partition.of("state_batches")
        fields["state_batches"] = [batch(first_offset=f, last_offset=la, delivery_state=st, delivery_count=c)
                                   for f, la, st, c in fields["state_batches"]]
    body = request(group_id=group, topics=[topic(topic_id=tid, partitions=[partition(partition=0, **fields)])])
    return raw_request(broker, api, 0, body).results[0].partitions[0]


def test_share_coordinator_answers_the_state_apis_as_kafka(three):
    brokers = three
    leaders = _state_leaders(brokers)
    create_topic(brokers[1].bootstrap, "shared-raw", 1)
    tid = _topic_id(brokers[1].bootstrap, "shared-raw")
    offsets = wait_until(lambda: _leaders_of(brokers[1], "__consumer_offsets"), timeout=20,
                         message="__consumer_offsets has leaders")
    # a group whose coordinator is not the share coordinator of its share-partition
    group = next(g for g in (f"sc-raw-{i}" for i in range(10_000))
                 if offsets[partition_for(g, len(offsets))]
                 != leaders[partition_for(coordinator_key(g, tid, 0), STATE_PARTITIONS)])
    coordinator = brokers[leaders[partition_for(coordinator_key(group, tid, 0), STATE_PARTITIONS)]]
    other = next(b for b in brokers.values() if b is not coordinator)
    read, write, delete = 84, 85, 86

    def batches(result: Any) -> list[tuple[int, int, int, int]]:
        return [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count) for b in result.state_batches]

    assert _state_call(other, read, group, tid, leader_epoch=0).error_code == 16  # NOT_COORDINATOR
    fresh = _state_call(coordinator, read, group, tid, leader_epoch=0)
    assert (fresh.error_code, fresh.start_offset, batches(fresh)) == (0, -1, [])
    assert _state_call(coordinator, write, group, tid, state_epoch=1, leader_epoch=2, start_offset=10,
                       state_batches=[(10, 19, 0, 1), (20, 29, 4, 3)]).error_code == 0
    # a write merges: its batches replace what they overlap, nothing below the start stays
    assert _state_call(coordinator, write, group, tid, state_epoch=1, leader_epoch=2, start_offset=15,
                       state_batches=[(15, 19, 2, 1)]).error_code == 0
    got = _state_call(coordinator, read, group, tid, leader_epoch=2)
    assert (got.error_code, got.state_epoch, got.start_offset) == (0, 1, 15)
    assert batches(got) == [(15, 19, 2, 1), (20, 29, 4, 3)]
    # FENCED_STATE_EPOCH, FENCED_LEADER_EPOCH
    assert _state_call(coordinator, write, group, tid, state_epoch=0, leader_epoch=2, start_offset=15,
                       state_batches=[]).error_code == 124
    assert _state_call(coordinator, write, group, tid, state_epoch=1, leader_epoch=1, start_offset=15,
                       state_batches=[]).error_code == 74
    # DescribeShareGroupOffsets on the group's coordinator asks the share coordinator
    assert _share_group_offsets(brokers, group, "shared-raw", exclude=0)[0] == 15
    assert _state_call(coordinator, delete, group, tid).error_code == 0
    assert _state_call(coordinator, read, group, tid, leader_epoch=2).start_offset == -1
    # FindCoordinator key type 2 names the same broker, from any broker
    find = ALL_APIS[10]
    keys = [coordinator_key(group, tid, 0), "not-a-share-key"]
    answer = raw_request(other, find, 6, codec_for(find).Request(key_type=2, coordinator_keys=keys))
    found = {c.key: (c.error_code, c.node_id) for c in answer.coordinators}
    assert found[keys[0]] == (0, coordinator.broker_id)
    assert found[keys[1]][0] == 42  # INVALID_REQUEST

def _share_group_offsets(brokers: dict[int, ClusterBroker], group: str, topic: str,
                         exclude: int) -> tuple[int, int]:
    """(start offset, lag) of partition 0 as the group's coordinator describes it."""
    api = ALL_APIS[90]
    request = codec_for(api).Request
    g = request.of("groups")
    t = g.of("topics")
    for broker_id, broker in brokers.items():
        if broker_id == exclude:
            continue
        answer = raw_request(broker, api, 1, request(groups=[g(group_id=group, topics=[
            t(topic_name=topic, partitions=[0])])])).groups[0]
        if answer.error_code == 0:
            p = answer.topics[0].partitions[0]
            assert p.error_code == 0
            return p.start_offset, p.lag
    raise AssertionError("no broker coordinates the group")


def test_share_partition_state_moves_with_leadership(three):
    brokers = three
    state_leaders = _state_leaders(brokers)
    coordinator = state_leaders[0]
    first_leader, second_leader = [b for b in (1, 2, 3) if b != coordinator]
    admin = admin_client(brokers[first_leader].bootstrap)
    admin.create_topics([NewTopic(TOPIC, num_partitions=1, replica_assignment=[[first_leader, second_leader]],
                                  config={"min.insync.replicas": "1"})])[TOPIC].result(timeout=20)
    wait_until(lambda: _leader(brokers[first_leader].bootstrap, TOPIC) == first_leader, timeout=20,
               message="the topic led by its first replica")
    tid = _topic_id(brokers[first_leader].bootstrap, TOPIC)
    # a group whose share-state partition is led by the third broker (neither replica)
    group = next(g for g in (f"sc-{i}" for i in range(10_000))
                 if state_leaders[partition_for(coordinator_key(g, tid, 0), STATE_PARTITIONS)] == coordinator)
    bootstrap = ",".join(brokers[b].bootstrap for b in (first_leader, second_leader))

    accepter = Worker(bootstrap, group, TOPIC, "--idle", "3")
    holder: Worker | None = None
    taker: Worker | None = None
    try:
        start = _synced(bootstrap, TOPIC, [accepter])
        _produce(bootstrap, TOPIC, FIRST)
        first = set(range(start, start + FIRST))
        accepter.wait(60)
        assert first <= set(accepter.accepted())

        # the second part: some of it held by a member (in flight) when the leader stops
        holder = Worker(bootstrap, group, TOPIC, "--hold", "--idle", "30")
        _produce(bootstrap, TOPIC, SECOND)
        second = set(range(start + FIRST, start + FIRST + SECOND))
        wait_until(lambda: holder.records, timeout=30, message="the holder acquired records")
        held = {r["o"] for r in holder.records}
        holder.kill()
        assert held and held <= second

        brokers[first_leader].stop()
        wait_until(lambda: _leader(brokers[second_leader].bootstrap, TOPIC) == second_leader, timeout=30,
                   message="the second replica leads")

        taker = Worker(brokers[second_leader].bootstrap, group, TOPIC, "--idle", "4")
        taker.wait(60)
        got = {r["o"] for r in taker.records if r["o"] >= start}
        accepted = taker.accepted()
        assert not got & first, "an accepted record was delivered again after the leader moved"
        assert set(accepted) == second, f"missing {sorted(second - set(accepted))[:10]}"
        assert len(accepted) == len(set(accepted))
        # the held records were persisted as delivered once: the new leader counts on
        assert all(r["d"] >= 2 for r in taker.records if r["o"] in held)
        assert all(1 <= r["d"] <= 2 for r in taker.records if r["o"] in second)
        # and the state went through the coordinator, not around it
        for b in (first_leader, second_leader):
            assert "not persisted" not in brokers[b].log_text()
        # DescribeShareGroupOffsets, from the group's coordinator: everything is done
        assert _share_group_offsets(brokers, group, TOPIC, exclude=first_leader)[0] == start + FIRST + SECOND

        # the share coordinator stops too: the state partition's new leader (the last
        # broker) loads it from the replicated log and answers ReadShareGroupState with it
        sidx = partition_for(coordinator_key(group, tid, 0), STATE_PARTITIONS)
        brokers[coordinator].stop()
        wait_until(lambda: (_leaders_of(brokers[second_leader], "__share_group_state") or {}).get(sidx)
                   == second_leader, timeout=30, message="the last broker leads the share-state partition")
        loaded = wait_until(lambda: (lambda r: r if r.error_code == 0 else None)(
            _state_call(brokers[second_leader], 84, group, tid, leader_epoch=-1)), timeout=20,
            message="the share-state partition loaded")
        assert loaded.start_offset == start + FIRST + SECOND
    finally:
        for w in (accepter, holder, taker):
            if w is not None:
                w.kill()

