"""A 3-broker ``moldau.testing.Cluster`` (the plugin's module-scoped ``moldau_cluster``):
moving a partition's leader and taking its broker down reach a producer as Kafka's
leadership errors, and it keeps delivering, in order, nothing lost. Skipped without
etcd. Cost: 11-19 s (three broker processes, one session timeout)."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from integration.cluster_helpers import create_replicated
from integration.kafka_helpers import confluent_consume, producer_conf
from moldau.testing import Cluster


def _deliver(producer: Producer, topic: str, values: list[bytes]) -> list[tuple[object, int]]:
    out: list[tuple[object, int]] = []
    for v in values:
        producer.produce(topic, v, partition=0, on_delivery=lambda e, m: out.append((e, m.offset())))
    assert producer.flush(60) == 0
    return out


def test_move_leader_and_broker_down(moldau_cluster: Cluster) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    create_replicated(moldau_cluster.bootstrap, topic)
    first = moldau_cluster.wait_for_leader(topic)
    producer = Producer(producer_conf(moldau_cluster.bootstrap, acks="all", **{"enable.idempotence": True}))
    sent = [f"a{i}".encode() for i in range(20)]
    assert all(e is None for e, _ in _deliver(producer, topic, sent))

    target = next(b for b in (1, 2, 3) if b != first)
    assert moldau_cluster.move_leader(topic, 0, target) >= 1  # a new leader epoch
    assert moldau_cluster.leader(topic) == target
    more = [f"b{i}".encode() for i in range(20)]  # the old leader answers NOT_LEADER_OR_FOLLOWER
    assert all(e is None for e, _ in _deliver(producer, topic, more))
    assert moldau_cluster.broker(target).counts()["seen"].get("0", 0) >= 1  # the new leader took them

    moldau_cluster.set_down(target)
    moldau_cluster.wait_for_leader(topic, not_on=target)
    last = [f"c{i}".encode() for i in range(20)]
    assert all(e is None for e, _ in _deliver(producer, topic, last))

    expected = sent + more + last
    got = confluent_consume(moldau_cluster.bootstrap, topic, len(expected), timeout=30)
    assert [g.value for g in got] == expected


def test_errors_injected_on_one_broker_of_the_cluster(moldau_cluster: Cluster) -> None:
    # the test before left a broker down: the fixture started it again
    assert all(b.is_running() for b in moldau_cluster.brokers)
    topic = f"t-{uuid.uuid4().hex[:8]}"
    create_replicated(moldau_cluster.bootstrap, topic)
    leader = moldau_cluster.broker(moldau_cluster.wait_for_leader(topic))
    leader.fail("Produce", "NOT_ENOUGH_REPLICAS", count=2)
    producer = Producer(producer_conf(moldau_cluster.bootstrap, acks="all"))
    assert _deliver(producer, topic, [b"x"]) == [(None, 0)]
    assert leader.counts()["injected"] == {"0": 2}


def test_rebalance_on_the_coordinator(moldau_cluster: Cluster) -> None:
    import time

    from confluent_kafka import Consumer

    topic = f"t-{uuid.uuid4().hex[:8]}"
    create_replicated(moldau_cluster.bootstrap, topic)
    group = "g-" + topic
    assigned: list[int] = []
    c = Consumer({"bootstrap.servers": moldau_cluster.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "heartbeat.interval.ms": 200})
    c.subscribe([topic], on_assign=lambda consumer, parts: assigned.append(len(parts)))
    try:
        deadline = time.monotonic() + 30
        while not assigned and time.monotonic() < deadline:
            c.poll(0.1)
        assert assigned == [1]
        assert moldau_cluster.rebalance(group)["protocol"] == "classic"
        deadline = time.monotonic() + 30
        while len(assigned) < 2 and time.monotonic() < deadline:
            c.poll(0.1)
        assert assigned == [1, 1]  # revoked, joined again, assigned again
    finally:
        c.close()
