"""Operating a cluster with real clients: placement, reassignments, leader elections,
log directories (issue 9, item 5).

Three ``moldau serve --cluster`` brokers on one etcd per test (each test its own key
prefix), driven with confluent-kafka's and kafka-python's admin clients. What is
proven: replicas and leaders are spread over brokers and racks; explicit assignments
are taken as given and refused as Kafka refuses them; a reassignment's new replica
catches up, joins the ISR, and the removed one leaves and deletes its log, the leader
moving when it is removed, the data then read from the new replicas; a reassignment
stuck on a frozen broker is listed and cancelled; ElectLeaders gives a partition back
to its preferred leader and an unclean election brings an offline partition back;
the controller's auto-rebalance does the same by itself after its check interval;
DescribeLogDirs reports the sizes on disk of every broker's replicas.

Cost: about 20-30 s on the 2-core machine (six clusters of three brokers, a few
broker stops and restarts with a 2 s session).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from confluent_kafka import ElectionType, KafkaException, TopicPartition
from confluent_kafka.admin import NewPartitions, NewTopic
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import (
    InvalidReplicationAssignmentError,
    LogDirNotFoundError,
    NoError,
    NoReassignmentInProgressError,
    UnknownTopicOrPartitionError,
)

from moldau.protocol.messages import ALL_APIS
from moldau.replication.client import codec_for

from .broker_process import Broker
from .cluster_helpers import AckedWriter as _Writer
from .cluster_helpers import raw_request
from .etcd_process import ClusterBroker
from .kafka_helpers import (
    admin_client,
    assert_delivered,
    assert_records,
    confluent_consume,
    confluent_produce,
    sample_records,
    unique_topic,
    wait_until,
)

INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
ELECTION_NOT_NEEDED = 84
PREFERRED_LEADER_NOT_AVAILABLE = 80
UNKNOWN_TOPIC_OR_PARTITION = 3


def _start(cluster, racks: dict[int, str] | None = None, **settings: object) -> dict[int, ClusterBroker]:
    brokers = {}
    for i in (1, 2, 3):
        extra = {"broker.rack": racks[i]} if racks else {}
        brokers[i] = cluster(i, **{"replica.lag.time.max.ms": 10000, **extra, **settings})
    wait_until(lambda: all(len(admin_client(b.bootstrap).list_topics(timeout=10).brokers) == 3
                           for b in brokers.values()), timeout=20, message="three brokers listed")
    return brokers


def _partitions(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """{partition: (leader, replicas, isr)} as this broker's Metadata says."""
    meta = admin_client(bootstrap).list_topics(topic=topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        return {}
    return {i: (p.leader, list(p.replicas), sorted(p.isrs)) for i, p in meta.partitions.items()}


def _kp_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)


def _create(bootstrap: str, topic: NewTopic) -> None:
    admin = admin_client(bootstrap)  # alive until the future is done
    admin.create_topics([topic], request_timeout=15)[topic.topic].result(timeout=20)


def _error_code(future) -> int:
    try:
        future.result(timeout=20)
    except KafkaException as exc:
        return exc.args[0].code()
    return 0


def _on_disk(data_dir: Path, topic: str, index: int) -> int:
    return sum(p.stat().st_size for p in (data_dir / f"{topic}-{index}").glob("*.log"))


def test_placement_spreads_over_racks_and_explicit_assignments(cluster) -> None:
    racks = {1: "rack-a", 2: "rack-b", 3: "rack-a"}
    brokers = _start(cluster, racks)
    bootstrap = brokers[1].bootstrap
    spread = unique_topic("spread")
    _create(bootstrap, NewTopic(spread, num_partitions=6, replication_factor=2))
    parts = wait_until(lambda: len(p := _partitions(bootstrap, spread)) == 6 and p, message="6 partitions")
    leaders = [leader for leader, _, _ in parts.values()]
    assert sorted(leaders) == [1, 1, 2, 2, 3, 3], parts  # leaders spread evenly
    for leader, replicas, _ in parts.values():
        assert leader == replicas[0]
        assert {racks[r] for r in replicas} == {"rack-a", "rack-b"}, parts  # both racks hold it
    # DescribeCluster and Metadata carry the racks
    described_admin = admin_client(bootstrap)
    described = described_admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert {n.id: n.rack for n in described.nodes} == racks

    # explicit assignments, taken as given, and grown by CreatePartitions with assignments
    manual = unique_topic("manual")
    _create(bootstrap, NewTopic(manual, num_partitions=2, replica_assignment=[[3, 1], [2, 3]]))
    wait_until(lambda: _partitions(bootstrap, manual).get(1, (0, [], []))[1] == [2, 3], message="assignment")
    assert {i: r for i, (_, r, _) in _partitions(bootstrap, manual).items()} == {0: [3, 1], 1: [2, 3]}
    admin = admin_client(bootstrap)
    grow = admin.create_partitions([NewPartitions(manual, 3, replica_assignment=[[1, 2]])], request_timeout=15)
    grow[manual].result(timeout=20)
    wait_until(lambda: _partitions(bootstrap, manual).get(2, (0, [], []))[1] == [1, 2], message="new partition")
    # refused as Kafka refuses them
    bad = {
        "unknown-broker": NewTopic(unique_topic("bad"), num_partitions=1, replica_assignment=[[1, 9]]),
        "duplicate": NewTopic(unique_topic("bad"), num_partitions=1, replica_assignment=[[1, 1]]),
        "uneven": NewTopic(unique_topic("bad"), num_partitions=2, replica_assignment=[[1, 2], [3]]),
    }
    for why, topic in bad.items():
        code = _error_code(admin.create_topics([topic], request_timeout=15)[topic.topic])
        assert code == INVALID_REPLICA_ASSIGNMENT, why
    too_many = NewTopic(unique_topic("rf4"), num_partitions=1, replication_factor=4)
    assert _error_code(admin.create_topics([too_many], request_timeout=15)[too_many.topic]) == \
        INVALID_REPLICATION_FACTOR
    short = admin.create_partitions([NewPartitions(manual, 5, replica_assignment=[[1, 2]])], request_timeout=15)
    assert _error_code(short[manual]) == INVALID_REPLICA_ASSIGNMENT


def test_reassignment_moves_replicas_and_leader_and_data(cluster) -> None:
    brokers = _start(cluster)
    bootstrap = brokers[1].bootstrap
    topic = unique_topic("move")
    _create(bootstrap, NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]],
                                config={"min.insync.replicas": "2"}))
    wait_until(lambda: _partitions(bootstrap, topic).get(0, (0, [], []))[2] == [1, 2], message="ISR 1,2")
    records = sample_records(200, seed=11)
    assert_delivered(confluent_produce(bootstrap, topic, records, chunks=4, acks="all"))
    assert _on_disk(brokers[1].data_dir, topic, 0) > 0

    admin = _kp_admin(bootstrap)
    try:
        tp = KpTopicPartition(topic, 0)
        assert admin.alter_partition_reassignments({tp: [3, 2]}) == {tp: None}
        # broker 3 catches up and joins the ISR, then broker 1 leaves; the leader moves off it
        done = wait_until(lambda: (p := _partitions(bootstrap, topic).get(0)) and p[1] == [3, 2] and p[2] == [2, 3]
                          and p, timeout=20, message="replicas [3, 2], ISR 2,3")
        assert done[0] in (2, 3)
        assert admin.list_partition_reassignments() == {}
        wait_until(lambda: not (brokers[1].data_dir / f"{topic}-0").exists(), message="broker 1 deleted its log")
        assert _on_disk(brokers[3].data_dir, topic, 0) == _on_disk(brokers[2].data_dir, topic, 0) > 0
        # the data is read from the new replicas, and acks=all writes need both of them
        assert_records(confluent_consume(bootstrap, topic, 200), records)
        more = sample_records(20, seed=12)
        assert_delivered(confluent_produce(bootstrap, topic, more, acks="all"), first_offset=200)
        # errors, per partition
        result = admin.alter_partition_reassignments({
            tp: None,                                   # nothing in progress
            KpTopicPartition(topic, 5): [1],            # no such partition
            KpTopicPartition(topic + "-x", 0): [1],     # no such topic
        })
        assert result[tp] is NoReassignmentInProgressError
        assert result[KpTopicPartition(topic, 5)] is UnknownTopicOrPartitionError
        assert result[KpTopicPartition(topic + "-x", 0)] is UnknownTopicOrPartitionError
        assert admin.alter_partition_reassignments({tp: [1, 7]})[tp] is InvalidReplicationAssignmentError
        assert admin.alter_partition_reassignments({tp: [1, 1]})[tp] is InvalidReplicationAssignmentError
    finally:
        admin.close()
    # with broker 2 gone too, broker 3 alone -- a replica only since the move -- serves it all
    brokers[2].stop()
    survivor = brokers[3].bootstrap
    wait_until(lambda: _partitions(survivor, topic)[0][::2] == (3, [3]), timeout=15, message="leader 3, ISR 3")
    assert_records(confluent_consume(survivor, topic, 220), records + more)


def test_reassignments_under_an_idempotent_producer_lose_and_duplicate_nothing(cluster) -> None:
    """Three moves, each removing the leader, while an acks=all idempotent producer
    writes without pause: every acknowledged record is read back once, in order."""
    brokers = _start(cluster)
    bootstrap = brokers[1].bootstrap
    topic = unique_topic("moving")
    _create(bootstrap, NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]],
                                config={"min.insync.replicas": "2"}))
    wait_until(lambda: _partitions(bootstrap, topic).get(0, (0, [], []))[2] == [1, 2], message="ISR 1,2")
    writer = _Writer(",".join(b.bootstrap for b in brokers.values()), topic)
    writer.start()
    admin = _kp_admin(bootstrap)
    tp = KpTopicPartition(topic, 0)
    took = []
    try:
        wait_until(lambda: len(writer.acks_after(0)) > 50, timeout=30, message="writes flowing")
        for target in ([3, 2], [1, 2], [2, 3]):  # each removes the leader: the first new replica leads
            began = time.monotonic()
            assert admin.alter_partition_reassignments({tp: target}) == {tp: None}
            wait_until(lambda t=target: (p := _partitions(bootstrap, topic).get(0)) and p[1] == t
                       and p[2] == sorted(t) and p[0] == t[0], timeout=30, interval=0.05,
                       message=f"replicas {target}")
            took.append(time.monotonic() - began)
            count = len(writer.acked)
            wait_until(lambda c=count: len(writer.acked) > c + 20, timeout=30, message="writes go on")
    finally:
        writer.stop_flag.set()
        writer.join(180)
        admin.close()
    assert not writer.is_alive() and not writer.failed, writer.failed[:5]
    acked = [value for value, _, _ in sorted(writer.acked, key=lambda a: a[1])]
    got = [int(g.value) for g in confluent_consume(bootstrap, topic, len(acked), timeout=60)]
    assert got == acked  # nothing lost, nothing twice, in order
    print(f"3 reassignments under load: {len(acked)} acknowledged, 0 lost, 0 duplicated; "
          "alter to completed: " + ", ".join(f"{t * 1000:.0f}" for t in took) + " ms")


def test_reassignment_stuck_on_a_frozen_broker_is_listed_and_cancelled(cluster) -> None:
    brokers = _start(cluster)
    probe = admin_client(brokers[1].bootstrap)
    controller = probe.describe_cluster(request_timeout=10).result(timeout=15).controller.id
    frozen_id = max(i for i in brokers if i != controller)  # the admin client keeps talking to the others
    a, b = sorted(i for i in brokers if i != frozen_id)
    frozen, bootstrap = brokers[frozen_id], brokers[a].bootstrap
    topic = unique_topic("cancel")
    _create(bootstrap, NewTopic(topic, num_partitions=1, replica_assignment=[[a, b]]))
    wait_until(lambda: _partitions(bootstrap, topic).get(0, (0, [], []))[2] == [a, b], message="full ISR")
    assert_delivered(confluent_produce(bootstrap, topic, sample_records(50, seed=5), acks="all"))
    admin = _kp_admin(bootstrap)
    tp = KpTopicPartition(topic, 0)
    try:
        assert admin.list_partition_reassignments() == {}  # connected to the controller first
        os.kill(frozen.pid, signal.SIGSTOP)  # still registered for a session: a valid target
        assert admin.alter_partition_reassignments({tp: [b, frozen_id]}) == {tp: None}
        listed = admin.list_partition_reassignments()
        expected = {"replicas": [b, frozen_id, a], "adding_replicas": [frozen_id], "removing_replicas": [a]}
        assert listed == {tp: expected}
        assert admin.list_partition_reassignments({topic: [0, 1]}) == listed
        assert _partitions(bootstrap, topic)[0][1] == [b, frozen_id, a]  # Metadata lists every replica meanwhile
        assert admin.alter_partition_reassignments({tp: None}) == {tp: None}
        assert admin.list_partition_reassignments() == {}
        # Kafka's revert: the replicas minus those being added, in the reassignment's order
        assert _partitions(bootstrap, topic)[0][1:] == ([b, a], [a, b])
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
        admin.close()
    # the thawed broker applies both changes in order: it is not a replica, holds no log
    wait_until(lambda: _partitions(frozen.bootstrap, topic).get(0, (0, [], []))[1] == [b, a],
               timeout=20, message="the frozen broker applied the cancel")
    wait_until(lambda: not (frozen.data_dir / f"{topic}-0").exists(), message="no log on the frozen broker")


def test_elect_leaders_preferred_and_unclean(cluster) -> None:
    brokers = _start(cluster, **{"auto.leader.rebalance.enable": False})
    bootstrap = brokers[3].bootstrap
    topic = unique_topic("elect")
    _create(bootstrap, NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]]))
    wait_until(lambda: _partitions(bootstrap, topic).get(0, (0, [], []))[2] == [1, 2], message="ISR 1,2")
    admin = admin_client(bootstrap)
    tp = TopicPartition(topic, 0)

    def elect(kind: ElectionType, partitions=None) -> dict:
        return admin.elect_leaders(kind, partitions).result(timeout=20)

    assert elect(ElectionType.PREFERRED, [tp])[tp].code() == ELECTION_NOT_NEEDED
    assert elect(ElectionType.UNCLEAN, [tp])[tp].code() == ELECTION_NOT_NEEDED
    unknown = TopicPartition(topic, 3)
    assert elect(ElectionType.PREFERRED, [unknown])[unknown].code() == UNKNOWN_TOPIC_OR_PARTITION
    # the preferred leader goes and comes back: leadership stays on 2 until asked
    brokers[1].stop()
    wait_until(lambda: _partitions(bootstrap, topic)[0][0] == 2, message="leader 2")
    assert elect(ElectionType.PREFERRED, [tp])[tp].code() == PREFERRED_LEADER_NOT_AVAILABLE
    brokers[1].start()
    wait_until(lambda: _partitions(bootstrap, topic)[0][2] == [1, 2], timeout=20, message="1 back in the ISR")
    assert _partitions(bootstrap, topic)[0][0] == 2
    assert elect(ElectionType.PREFERRED, None) == {tp: None}  # all partitions: only those elected
    wait_until(lambda: _partitions(bootstrap, topic)[0][0] == 1, message="leader 1 again")
    records = sample_records(30, seed=8)
    assert_delivered(confluent_produce(bootstrap, topic, records, acks="all"))

    # unclean: the follower stops, then the leader; the follower comes back alone
    brokers[2].stop()
    wait_until(lambda: _partitions(bootstrap, topic)[0][2] == [1], message="ISR 1")
    brokers[1].stop()
    brokers[2].start()
    wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 2, message="brokers 2 and 3")
    assert _partitions(bootstrap, topic)[0][0] == -1  # offline: clean election only
    assert elect(ElectionType.PREFERRED, [tp])[tp].code() == PREFERRED_LEADER_NOT_AVAILABLE
    assert elect(ElectionType.UNCLEAN, [tp]) == {tp: None}
    wait_until(lambda: _partitions(bootstrap, topic)[0][:3:2] == (2, [2]), message="leader 2, ISR 2")
    # broker 2 had every record of the ISR [1, 2] before it stopped: nothing was lost here
    assert_records(confluent_consume(bootstrap, topic, 30), records)


def test_auto_leader_rebalance_moves_leaders_back(cluster) -> None:
    brokers = _start(cluster, **{"leader.imbalance.check.interval.seconds": 2})
    bootstrap = brokers[3].bootstrap
    topic = unique_topic("rebalance")
    _create(bootstrap, NewTopic(topic, num_partitions=3, replica_assignment=[[1, 2], [1, 3], [2, 1]]))
    wait_until(lambda: [p[2] for p in _partitions(bootstrap, topic).values()] == [[1, 2], [1, 3], [1, 2]],
               message="full ISRs")
    brokers[1].stop()
    wait_until(lambda: [p[0] for p in _partitions(bootstrap, topic).values()] == [2, 3, 2], message="1 led nothing")
    brokers[1].start()
    # once 1 is back in the ISRs the controller's check (every 2 s) gives it its partitions back
    wait_until(lambda: [p[0] for p in _partitions(bootstrap, topic).values()] == [1, 1, 2], timeout=25,
               message="preferred leaders again")


def test_describe_log_dirs_on_every_broker(cluster) -> None:
    brokers = _start(cluster)
    bootstrap = brokers[1].bootstrap
    topic = unique_topic("dirs")
    _create(bootstrap, NewTopic(topic, num_partitions=2, replica_assignment=[[1, 2], [2, 3]]))
    wait_until(lambda: [p[2] for p in _partitions(bootstrap, topic).values()] == [[1, 2], [2, 3]], message="ISRs")
    assert_delivered(confluent_produce(bootstrap, topic, sample_records(100, seed=1), partition=0, acks="all"))
    assert_delivered(confluent_produce(bootstrap, topic, sample_records(40, seed=2), partition=1, acks="all"))
    admin = _kp_admin(bootstrap)
    try:
        answers = admin.describe_log_dirs()
        assert sorted(a["broker"] for a in answers) == [1, 2, 3]
        for answer in answers:
            b = brokers[answer["broker"]]
            (log_dir,) = answer["log_dirs"]
            assert log_dir["error_code"] == 0 and log_dir["log_dir"] == str(b.data_dir.resolve())
            assert log_dir["total_bytes"] > 0 and log_dir["usable_bytes"] > 0
            ours = {t["name"]: t["partitions"] for t in log_dir["topics"]}.get(topic, [])
            sizes = {p["partition_index"]: p["partition_size"] for p in ours}
            expected = {i for i, reps in enumerate([[1, 2], [2, 3]]) if b.broker_id in reps}
            assert set(sizes) == expected
            for i in expected:  # the bytes of the replica's segments on this broker's disk
                assert sizes[i] == _on_disk(b.data_dir, topic, i) > 0
            assert all(p["offset_lag"] == 0 and not p["is_future_key"] for p in ours)
        only = admin.describe_log_dirs({topic: [1]}, brokers=[3])
        assert [[(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in d["topics"]]
                for d in only[0]["log_dirs"]] == [[(topic, [1])]]
        # one log directory per broker: moving a replica elsewhere is refused
        moved = admin.alter_replica_log_dirs({(topic, 0, 1): "/nonexistent/dir"})
        assert list(moved.values()) == [LogDirNotFoundError]
        same = admin.alter_replica_log_dirs({(topic, 0, 1): str(brokers[1].data_dir.resolve())})
        assert list(same.values()) == [NoError]
    finally:
        admin.close()


def _raw_reassign_v1(b: Broker, topic: str, replicas: list[int], allow_rf_change: bool) -> int:
    """AlterPartitionReassignments v1 (KIP-860's flag, which kafka-python does not expose)
    for partition 0; its error code."""
    api = ALL_APIS[45]
    codec = codec_for(api)
    topics = codec.Request.of("topics")
    request = codec.Request(timeout_ms=10000, allow_replication_factor_change=allow_rf_change, topics=[
        topics(name=topic, partitions=[topics.of("partitions")(partition_index=0, replicas=replicas)]),
    ])

    response = raw_request(b, api, 1, request)
    assert response.allow_replication_factor_change is allow_rf_change
    return response.responses[0].partitions[0].error_code


def test_single_broker_answers_the_operator_apis(broker, topic) -> None:
    _create(broker.bootstrap, NewTopic(topic, num_partitions=2, replication_factor=1))
    wait_until(lambda: len(_partitions(broker.bootstrap, topic)) == 2, message="topic")
    tp = TopicPartition(topic, 0)
    admin = admin_client(broker.bootstrap)
    result = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=20)
    assert result[tp].code() == ELECTION_NOT_NEEDED
    assert admin.elect_leaders(ElectionType.PREFERRED, None).result(timeout=20) == {}
    (me,) = [n.id for n in admin.describe_cluster(request_timeout=10).result(timeout=15).nodes]
    kp = _kp_admin(broker.bootstrap)
    try:
        ktp = KpTopicPartition(topic, 0)
        assert kp.alter_partition_reassignments({ktp: [me]}) == {ktp: None}
        assert kp.alter_partition_reassignments({ktp: [me + 1]})[ktp] is InvalidReplicationAssignmentError
        assert kp.list_partition_reassignments() == {}
        assert _raw_reassign_v1(broker, topic, [me, me + 1], allow_rf_change=False) == INVALID_REPLICATION_FACTOR
        assert _raw_reassign_v1(broker, topic, [me], allow_rf_change=False) == 0
        (answer,) = kp.describe_log_dirs()
        partitions = {p["partition_index"] for t in answer["log_dirs"][0]["topics"] if t["name"] == topic
                      for p in t["partitions"]}
        assert partitions == {0, 1}
    finally:
        kp.close()


class _RackOptionBroker(Broker):
    """A single broker given its rack with ``--rack`` rather than a property."""

    def command(self) -> list[str]:
        return [*super().command(), "--broker-id", "7", "--rack", "rack-z"]


def test_rack_option_reaches_metadata_and_describe_cluster() -> None:
    b = _RackOptionBroker(name="rack")
    try:
        b.start()
        admin = admin_client(b.bootstrap)
        assert [(n.id, n.rack) for n in admin.describe_cluster(request_timeout=10).result(timeout=15).nodes] == \
            [(7, "rack-z")]
    finally:
        b.dispose()
