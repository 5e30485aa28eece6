"""Cluster membership with real processes: ``moldau serve --cluster`` brokers on one etcd.

What is proven here (no partition replication yet): brokers register and every broker's
Metadata and DescribeCluster list all live ones and the same elected controller; the
controller's kill -9 elects another within ``broker.session.timeout.ms`` plus a margin;
a second broker with a live broker's id is refused with a message; a topic created
through one broker appears, with its placement, in every broker's metadata, and records
produced to partitions placed on different brokers read back.
"""

from __future__ import annotations

import subprocess
import time
import uuid

from .etcd_process import SESSION_MS, ClusterBroker
from .kafka_helpers import (
    admin_client,
    assert_delivered,
    assert_records,
    confluent_consume,
    confluent_produce,
    create_topic,
    delete_topic,
    sample_records,
    unique_topic,
    wait_until,
)


def _view(broker: ClusterBroker) -> tuple[list[int], int, list[int], int]:
    """(brokers, controller) as Metadata says, then as DescribeCluster says."""
    admin = admin_client(broker.bootstrap)
    metadata = admin.list_topics(timeout=10)
    described = admin.describe_cluster(request_timeout=10).result(timeout=15)
    return (
        sorted(metadata.brokers),
        metadata.controller_id,
        sorted(node.id for node in described.nodes),
        described.controller.id,
    )


def _agreed(brokers: list[ClusterBroker], ids: list[int]) -> int | None:
    """The controller id if every broker lists exactly ``ids`` and one same controller."""
    views = [_view(b) for b in brokers]
    controllers = {v[1] for v in views} | {v[3] for v in views}
    if all(v[0] == ids and v[2] == ids for v in views) and len(controllers) == 1:
        controller = controllers.pop()
        return controller if controller in ids else None
    return None


def test_three_brokers_join_and_agree_on_the_controller(cluster) -> None:
    brokers = [cluster(i, **{"broker.rack": f"rack-{i % 2}"}) for i in (1, 2, 3)]
    controller = wait_until(lambda: _agreed(brokers, [1, 2, 3]), timeout=15, message="all three agree")
    endpoints = {
        b.id: (b.host, b.port) for b in admin_client(brokers[2].bootstrap).list_topics(timeout=10).brokers.values()
    }
    assert endpoints == {b.broker_id: (b.host, b.port) for b in brokers}
    assert controller == 1  # the first to campaign wins an empty cluster
    admin = admin_client(brokers[1].bootstrap)  # kept alive until its future resolves
    nodes = admin.describe_cluster(request_timeout=10).result(timeout=15).nodes
    assert {n.id: n.rack for n in nodes} == {1: "rack-1", 2: "rack-0", 3: "rack-1"}


def test_single_broker_takes_its_id_and_rack_from_properties(make_broker) -> None:
    broker = make_broker(**{"broker.id": 4, "broker.rack": "rack-a"})
    admin = admin_client(broker.bootstrap)
    metadata = admin.list_topics(timeout=10)
    assert sorted(metadata.brokers) == [4] and metadata.controller_id == 4
    described = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert [(n.id, n.rack) for n in described.nodes] == [(4, "rack-a")] and described.controller.id == 4


def test_controller_kill9_elects_another(cluster) -> None:
    brokers = {i: cluster(i) for i in (1, 2, 3)}
    controller = wait_until(lambda: _agreed(list(brokers.values()), [1, 2, 3]), timeout=15, message="agreement")
    victim = brokers.pop(controller)
    marks = {i: b.log_size() for i, b in brokers.items()}
    victim.kill9()
    killed = time.monotonic()

    def elected() -> int | None:
        for i, b in brokers.items():
            if "elected controller" in b.log_text(marks[i]):
                return i
        return None

    winner = wait_until(elected, timeout=15, interval=0.02, message="a survivor elected")
    failover = time.monotonic() - killed
    print(f"controller failover after kill -9: {failover * 1000:.0f} ms (session {SESSION_MS} ms)")
    # etcd ends a lease at most ~0.5 s after its TTL; the rest is margin for a busy machine.
    assert failover < SESSION_MS / 1000 + 2.5
    # Every survivor's answers agree on it (clients may first try the dead broker: be patient).
    survivors = sorted(brokers)
    assert wait_until(lambda: _agreed(list(brokers.values()), survivors), timeout=40, interval=0.2,
                      message="survivors agree on the new controller") == winner


def test_duplicate_broker_id_is_refused(cluster) -> None:
    cluster(1)
    twin = ClusterBroker(1, cluster.url, {"broker.session.timeout.ms": SESSION_MS})
    try:
        result = subprocess.run(twin.command(), capture_output=True, text=True, timeout=60)
    finally:
        twin.dispose()
    assert result.returncode == 1, result.stderr[-3000:]
    assert "broker id 1 is already registered by a live broker" in result.stderr


def test_topic_created_on_one_broker_appears_everywhere(cluster) -> None:
    brokers = [cluster(i) for i in (1, 2, 3)]
    wait_until(lambda: _agreed(brokers, [1, 2, 3]), timeout=15, message="agreement")
    topic = create_topic(brokers[1].bootstrap, unique_topic("spread"), partitions=6)

    def placement(broker: ClusterBroker) -> dict[int, tuple[int, tuple[int, ...]]] | None:
        meta = admin_client(broker.bootstrap).list_topics(topic=topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or len(meta.partitions) != 6:
            return None
        return {p.id: (p.leader, tuple(p.replicas)) for p in meta.partitions.values()}

    seen = [wait_until(lambda b=b: placement(b), timeout=10, message=f"{topic} on {b.name}") for b in brokers]
    assert seen[0] == seen[1] == seen[2]
    assert {leader for leader, _ in seen[0].values()} == {1, 2, 3}  # placed over all live brokers
    # Each partition's leader hosts it: records go there (through any bootstrap) and back.
    for partition in range(6):
        records = sample_records(5, seed=partition)
        assert_delivered(confluent_produce(brokers[0].bootstrap, topic, records, partition=partition))
        got = confluent_consume(brokers[2].bootstrap, topic, 5, partition=partition)
        assert_records(got, records)
    # Deleted through a third broker, it leaves every broker's metadata.
    delete_topic(brokers[2].bootstrap, topic)
    for broker in brokers:
        wait_until(lambda b=broker: topic not in admin_client(b.bootstrap).list_topics(timeout=10).topics,
                   timeout=10, message=f"{topic} gone from {broker.name}")


def test_a_crashed_broker_restarted_at_once_rejoins(cluster) -> None:
    brokers = [cluster(i) for i in (1, 2)]
    wait_until(lambda: _agreed(brokers, [1, 2]), timeout=15, message="agreement")
    brokers[1].kill9()
    restarted = time.monotonic()
    brokers[1].start()  # its former registration is still alive: it waits for it to lapse
    took = time.monotonic() - restarted
    print(f"restart after kill -9 rejoined in {took * 1000:.0f} ms (session {SESSION_MS} ms)")
    assert took < SESSION_MS / 1000 + 10
    wait_until(lambda: _agreed(brokers, [1, 2]), timeout=30, interval=0.2, message="both listed again")


def test_a_consumer_group_is_coordinated_by_its_offsets_partition_leader(cluster) -> None:
    from confluent_kafka import Consumer

    from moldau.coordinator.group.hashing import partition_for

    from .kafka_helpers import consumer_conf

    brokers = [cluster(i) for i in (1, 2, 3)]
    wait_until(lambda: _agreed(brokers, [1, 2, 3]), timeout=15, message="agreement")
    topic = create_topic(brokers[0].bootstrap, unique_topic("grouped"), partitions=3)
    # The first FindCoordinator creates __consumer_offsets, placed over all three brokers.
    warm = admin_client(brokers[0].bootstrap)
    warm.describe_consumer_groups(["warm-up"], request_timeout=10)["warm-up"].result(timeout=20)

    def offsets_leaders() -> dict[int, int] | None:
        meta = admin_client(brokers[2].bootstrap).list_topics(timeout=10).topics.get("__consumer_offsets")
        return None if meta is None or not meta.partitions else {p.id: p.leader for p in meta.partitions.values()}

    leaders = wait_until(offsets_leaders, timeout=15, message="__consumer_offsets in metadata")
    assert set(leaders.values()) == {1, 2, 3}
    # A group coordinated by broker 1, used through broker 3 and inspected through broker 2.
    group = next(g for g in (f"g-{uuid.uuid4().hex[:8]}" for _ in range(1000))
                 if leaders[partition_for(g, len(leaders))] == 1)
    records = {p: sample_records(4, seed=10 + p) for p in range(3)}
    for p, recs in records.items():
        assert_delivered(confluent_produce(brokers[0].bootstrap, topic, recs, partition=p))
    consumer = Consumer(consumer_conf(brokers[2].bootstrap, **{"group.id": group}))
    got: list = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 40
        while len(got) < 12 and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got.append(msg)
        assert sorted((m.partition(), m.offset(), m.value()) for m in got) == sorted(
            (p, i, r.value) for p, recs in records.items() for i, r in enumerate(recs)
        )
        consumer.commit(offsets=_group_request(group, topic, 4).topic_partitions, asynchronous=False)
        admin = admin_client(brokers[1].bootstrap)
        described = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
        assert described.coordinator.id == 1 and len(described.members) == 1
    finally:
        consumer.close()
    offsets = admin.list_consumer_group_offsets([_group_request(group, topic)])[group].result(timeout=20)
    assert sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions) == [(0, 4), (1, 4), (2, 4)]


def _group_request(group: str, topic: str, offset: int = -1001):
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    return ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, offset) for p in range(3)])
