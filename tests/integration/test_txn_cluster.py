"""The transaction coordinator in a cluster: two brokers, ``__transaction_state``
replicated on both. FindCoordinator names the leader of the id's partition; when that
broker is killed with kill -9 the other one, elected leader, loads the id's state from
its replica and carries on with the stored producer id and epoch (a new incarnation is
bumped past it, not given a fresh producer).

The second test runs transactions over partitions led by both brokers (markers go over
the network as WriteTxnMarkers) and kills the coordinator's broker mid-transaction: the
next incarnation of the producer, served by the survivor, aborts the open transaction
and read_committed consumers see exactly the committed one.
Cost: about 15 s per test (etcd, two brokers, one session expiry of 2 s).
"""

from __future__ import annotations

import time

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from .kafka_helpers import admin_client, describe_transaction, read_to_end, wait_until

TXN_STATE = "__transaction_state"
SETTINGS = {
    "transaction.state.log.num.partitions": 1,
    "transaction.state.log.replication.factor": 2,
    "transaction.state.log.min.isr": 1,
    "replica.lag.time.max.ms": 10000,
}


def _txn_state_leader(bootstrap: str) -> tuple[int, list[int]] | None:
    meta = admin_client(bootstrap).list_topics(topic=TXN_STATE, timeout=10).topics.get(TXN_STATE)
    if meta is None or meta.error is not None or 0 not in meta.partitions:
        return None
    p = meta.partitions[0]
    return p.leader, sorted(p.isrs)


def test_the_coordinator_moves_with_its_partition_and_keeps_the_state(cluster) -> None:
    brokers = {i: cluster(i, **SETTINGS) for i in (1, 2)}
    wait_until(lambda: all(len(admin_client(b.bootstrap).list_topics(timeout=10).brokers) == 2
                           for b in brokers.values()), timeout=20, message="two brokers listed")
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    first = Producer({"bootstrap.servers": bootstrap, "transactional.id": "moving", "socket.timeout.ms": 5000})
    first.init_transactions(30)
    state = wait_until(lambda: _txn_state_leader(brokers[1].bootstrap), timeout=20, message="txn state partition")
    assert state[1] == [1, 2]
    described = wait_until(lambda: describe_transaction(bootstrap, "moving", 5000), timeout=20, message="described")
    coordinator = described.coordinator_id
    assert coordinator == state[0] and described.producer_epoch == 0

    brokers[coordinator].kill9()
    survivor = brokers[3 - coordinator]
    wait_until(lambda: (_txn_state_leader(survivor.bootstrap) or (0,))[0] == survivor.broker_id, timeout=30,
               interval=0.2, message="the survivor leads __transaction_state")
    second = Producer({"bootstrap.servers": survivor.bootstrap, "transactional.id": "moving",
                       "socket.timeout.ms": 5000})
    second.init_transactions(30)
    after = describe_transaction(survivor.bootstrap, "moving", 5000)
    assert after.coordinator_id == survivor.broker_id
    assert (after.producer_id, after.producer_epoch) == (described.producer_id, 1)


def _leaders(bootstrap: str, topic: str) -> dict[int, int]:
    meta = admin_client(bootstrap).list_topics(topic=topic, timeout=10).topics[topic]
    return {i: p.leader for i, p in meta.partitions.items()}


def test_markers_cross_brokers_and_a_killed_coordinator_leaves_no_open_transaction(cluster) -> None:
    brokers = {i: cluster(i, **SETTINGS) for i in (1, 2)}
    wait_until(lambda: all(len(admin_client(b.bootstrap).list_topics(timeout=10).brokers) == 2
                           for b in brokers.values()), timeout=20, message="two brokers listed")
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    topic = f"spread-{time.monotonic_ns()}"
    admin = admin_client(bootstrap)  # kept alive until its future resolves
    admin.create_topics([NewTopic(topic, 2, 2)], request_timeout=15)[topic].result(timeout=20)
    leaders = wait_until(lambda: (lambda ls: ls if set(ls.values()) == {1, 2} else None)(_leaders(bootstrap, topic)),
                         timeout=20, message="one leader on each broker")
    conf = {"bootstrap.servers": bootstrap, "transactional.id": "spread", "socket.timeout.ms": 5000,
            "transaction.timeout.ms": 60000}
    p = Producer(conf)
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=b"committed-%d" % i, partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=b"open-%d" % i, partition=i % 2)
    p.flush(10)
    coordinator = describe_transaction(bootstrap, "spread", 5000).coordinator_id
    assert coordinator in leaders.values()
    brokers[coordinator].kill9()
    survivor = brokers[3 - coordinator]
    wait_until(lambda: set(_leaders(survivor.bootstrap, topic).values()) == {survivor.broker_id}
               and (_txn_state_leader(survivor.bootstrap) or (0,))[0] == survivor.broker_id,
               timeout=30, interval=0.2, message="the survivor leads everything")
    again = Producer({**conf, "bootstrap.servers": survivor.bootstrap})
    again.init_transactions(60)  # aborts the open transaction first
    assert sorted(read_to_end(survivor.bootstrap, topic, 2)) == sorted(b"committed-%d" % i for i in range(6))
