"""Replication with real processes: three ``moldau serve --cluster`` brokers on one etcd.

What is proven here: a topic with replication factor 3 and ``min.insync.replicas=2``
has every acks=all record in all three brokers' logs; a broker that does not lead a
partition answers NOT_LEADER_OR_FOLLOWER and clients reroute by themselves; with two
of three brokers down an acks=all produce is refused with NOT_ENOUGH_REPLICAS; and an
idempotent acks=all producer writing without pause while the partition leader is
killed with kill -9 and restarted, cycle after cycle, loses nothing acknowledged and
duplicates nothing (every acknowledged record is read back exactly once, in order); a
leader that took acks=1 writes its stopped followers never fetched, killed and
restarted, truncates that tail by OffsetForLeaderEpoch so that all three logs end up
identical; a consumer group keeps consuming when its coordinator's broker is killed;
a follower that stops fetching leaves the ISR after replica.lag.time.max.ms (acks=all
writes then complete without it) and comes back once caught up.
The failover time (kill -9 of the leader to the first acknowledged write after it,
necessarily on its successor) is printed, with ``broker.session.timeout.ms`` = 2000.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from confluent_kafka import Consumer

from moldau.protocol.messages import ALL_APIS
from moldau.replication.client import BrokerClient, codec_for

from .cluster_helpers import AckedWriter as _Writer
from .cluster_helpers import create_replicated as _create_replicated
from .cluster_helpers import election_delay as _election_delay
from .cluster_helpers import fully_replicated as _fully_replicated
from .cluster_helpers import log_values as _log_values
from .cluster_helpers import raw_produce as _raw_produce
from .cluster_helpers import read_all as _read_all
from .cluster_helpers import records_on_disk as _records_on_disk
from .cluster_helpers import start_three as _start_three
from .cluster_helpers import state as _state
from .etcd_process import SESSION_MS, ClusterBroker
from .kafka_helpers import (
    admin_client,
    assert_delivered,
    confluent_produce,
    consumer_conf,
    sample_records,
    unique_topic,
    wait_until,
)

#: kill -9 cycles of the leader in the loop below: 20, what the issue asks of the suite
KILL_CYCLES = int(os.environ.get("MOLDAU_KILL_CYCLES", "20"))
#: broker.session.timeout.ms of the kill loop: a dead leader's lease lapses in 1-1.5 s
KILL_SESSION_MS = 1000
NOT_LEADER_OR_FOLLOWER = 6
NOT_ENOUGH_REPLICAS = 19


def test_acks_all_records_are_on_every_replica(cluster) -> None:
    brokers = _start_three(cluster)
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("rf3"))
    leader = wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    records = sample_records(300, seed=3)
    assert_delivered(confluent_produce(brokers[1].bootstrap, topic, records, chunks=3, acks="all"))
    # acknowledged with acks=all means the whole ISR has it: all three logs, on disk now
    for b in brokers.values():
        assert _records_on_disk(b.data_dir, topic) == 300, b.name
    # the leader's followers answer NOT_LEADER_OR_FOLLOWER; the leader takes the write
    for i, b in brokers.items():
        expected = 0 if i == leader else NOT_LEADER_OR_FOLLOWER
        assert _raw_produce(b, topic, acks=-1) == expected, b.name
    # clients bootstrapped at a follower find the leader by themselves
    follower = next(b for i, b in brokers.items() if i != leader)
    assert_delivered(confluent_produce(follower.bootstrap, topic, sample_records(10, seed=4), acks="all"),
                     first_offset=301)
    consumer = Consumer(consumer_conf(follower.bootstrap))
    try:
        from confluent_kafka import TopicPartition

        consumer.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 311 and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got.append(msg.offset())
        assert got == list(range(311))
    finally:
        consumer.close()


def test_not_enough_replicas_with_two_of_three_down(cluster) -> None:
    brokers = _start_three(cluster)
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("minisr"))
    leader = wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    assert _raw_produce(brokers[leader], topic, acks=-1) == 0
    for i in [i for i in brokers if i != leader]:
        brokers[i].kill9()
    # the controller (the leader itself by now: it is the only live broker) drops the dead from the ISR
    wait_until(lambda: _state(brokers[leader], topic) == (leader, [1, 2, 3], [leader]),
               timeout=SESSION_MS / 1000 + 20, message="ISR shrunk to the leader")
    assert _raw_produce(brokers[leader], topic, acks=-1) == NOT_ENOUGH_REPLICAS
    assert _raw_produce(brokers[leader], topic, acks=1) == 0
    # Metadata names the replicas whose brokers are gone as offline
    assert _offline_replicas(brokers[leader], topic) == sorted(i for i in brokers if i != leader)


def _offline_replicas(broker: ClusterBroker, topic: str) -> list[int]:
    api = ALL_APIS[3]
    codec = codec_for(api)
    request = codec.Request(topics=[codec.Request.of("topics")(name=topic)], allow_auto_topic_creation=False)

    async def send() -> list[int]:
        client = BrokerClient(broker.host, broker.port, "it-meta")
        try:
            response = await client.request(api, 9, request, timeout=20)
        finally:
            await client.close()
        return sorted(response.topics[0].partitions[0].offline_replicas)

    return asyncio.run(send())


def test_a_diverged_tail_is_truncated_by_leader_epoch(cluster) -> None:
    """The leader takes acks=1 writes its stopped followers never fetch, dies, and
    comes back as a follower of a new leader that wrote other records at those offsets:
    it truncates by OffsetForLeaderEpoch and all three logs end up identical."""
    brokers = _start_three(cluster)
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("diverge"))
    leader = wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    for n in range(5):
        assert _raw_produce(brokers[leader], topic, acks=-1, value=b"committed-%d" % n) == 0
    followers = [i for i in brokers if i != leader]
    for i in followers:
        os.kill(brokers[i].pid, signal.SIGSTOP)
    try:
        for n in range(3):  # the first may still reach a stopped follower's socket
            assert _raw_produce(brokers[leader], topic, acks=1, value=b"diverged-%d" % n) == 0
        brokers[leader].kill9()
    finally:
        for i in followers:
            os.kill(brokers[i].pid, signal.SIGCONT)
    old = brokers[leader]
    survivors = {i: brokers[i] for i in followers}
    successor = wait_until(lambda: _fully_replicated(survivors, topic, followers), timeout=30, interval=0.2,
                           message="a new leader with the survivors in the ISR")
    for n in range(5):
        assert _raw_produce(brokers[successor], topic, acks=-1, value=b"new-%d" % n) == 0
    mark = old.log_size()
    old.start()
    wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=40, interval=0.2,
               message="the old leader back in the ISR")
    assert "truncating from" in old.log_text(mark)
    logs = wait_until(lambda: (lambda v: v if v[0] == v[1] == v[2] else None)(
        [_log_values(b.data_dir, topic) for b in brokers.values()]), timeout=20, message="three equal logs")
    values = [v for _, v in logs[0]]
    assert values[:5] == [b"committed-%d" % n for n in range(5)]
    assert values[-5:] == [b"new-%d" % n for n in range(5)]
    assert b"diverged-2" not in values
    assert [o for o, _ in logs[0]] == list(range(len(values)))



def test_leader_kill9_loop_loses_and_duplicates_nothing(cluster) -> None:
    """Cost: 3-4 s per cycle (session 1000 ms; 20 cycles: about 85 s in all, 65 s more than 5)."""
    brokers = _start_three(cluster, **{"broker.session.timeout.ms": KILL_SESSION_MS})
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("kill9"))
    wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    writer = _Writer(",".join(b.bootstrap for b in brokers.values()), topic)
    writer.start()
    failovers: list[float] = []
    elections: list[float | None] = []
    try:
        wait_until(lambda: len(writer.acks_after(0)) > 50, timeout=30, message="writes flowing")
        for cycle in range(KILL_CYCLES):
            leader = wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=60,
                                interval=0.2, message=f"ISR 1,2,3 before cycle {cycle}")
            victim = brokers[leader]
            marks = {i: b.log_size() for i, b in brokers.items()}
            victim.kill9()
            killed, killed_wall = time.monotonic(), time.time()
            first = wait_until(lambda k=killed: writer.acks_after(k), timeout=60, interval=0.01,
                               message=f"an acknowledged write after kill {cycle}")[0]
            failovers.append(first - killed)
            elections.append(_election_delay(brokers, marks, topic, leader, killed_wall))
            victim.start()
        wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=60, interval=0.2,
                   message="ISR 1,2,3 at the end")
        time.sleep(0.5)
    finally:
        writer.stop_flag.set()
        writer.join(180)
    assert not writer.is_alive()
    acked = {value: offset for value, offset, _ in writer.acked}
    # read everything back through a broker that was killed and restarted
    values = _read_all(brokers[1].bootstrap, topic)
    seen: dict[int, int] = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
    lost = [v for v in acked if v not in seen]
    duplicated = [v for v, n in seen.items() if n > 1]
    in_log_order = [v for v in values if v in acked]
    print(f"kill -9 loop: {KILL_CYCLES} cycles, {writer.sent} sent, {len(acked)} acknowledged, "
          f"{len(writer.failed)} failed, {len(lost)} lost, {len(duplicated)} duplicated; failover "
          + ", ".join(f"{f * 1000:.0f}" for f in failovers) + f" ms (session {KILL_SESSION_MS} ms); of which "
          "kill to the controller's election: " + ", ".join("?" if e is None else f"{e * 1000:.0f}" for e in elections)
          + " ms")
    assert len(acked) > 100
    assert not lost, f"lost acknowledged records: {lost[:20]}"
    assert not duplicated, f"duplicated records: {duplicated[:20]}"
    assert in_log_order == sorted(in_log_order), "acknowledged records out of order"
    for failover in failovers:
        assert failover < SESSION_MS / 1000 + 15


def test_a_consumer_group_keeps_consuming_when_its_coordinator_dies(cluster) -> None:
    brokers = _start_three(cluster, **{"offsets.topic.replication.factor": 3, "offsets.topic.num.partitions": 3})
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("grouped"))
    wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    writer = _Writer(bootstrap, topic)
    writer.start()
    group = f"g-{unique_topic('c')}"
    consumer = Consumer(consumer_conf(bootstrap, **{"group.id": group, "enable.auto.commit": True,
                                                    "auto.commit.interval.ms": 200,
                                                    "session.timeout.ms": 6000,
                                                    "heartbeat.interval.ms": 500}))
    values: list[int] = []

    def consume_until(predicate, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {message}; got {len(values)}"
            msg = consumer.poll(0.1)
            if msg is not None and not msg.error():
                values.append(int(msg.value()))

    try:
        consumer.subscribe([topic])
        consume_until(lambda: len(values) > 200, 60, "records before the kill")
        admin = admin_client(brokers[1].bootstrap)
        coordinator = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20).coordinator.id
        brokers[coordinator].kill9()
        killed_at = len(values)
        top = max(values)
        consume_until(lambda: max(values) > top + 300, 90, "records after the coordinator's kill -9")
        survivor = brokers[next(i for i in brokers if i != coordinator)]
        survivor_admin = admin_client(survivor.bootstrap)  # kept alive until its future resolves
        described = survivor_admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=30)
        print(f"group moved from coordinator {coordinator} to {described.coordinator.id}; "
              f"{len(values) - killed_at} records consumed after the kill")
        assert described.coordinator.id != coordinator
    finally:
        consumer.close()
        writer.stop_flag.set()
        writer.join(180)


def test_a_lagging_follower_leaves_the_isr_and_returns(cluster) -> None:
    """A follower that stops fetching (SIGSTOP, its session still alive) is removed from
    the ISR by the leader after replica.lag.time.max.ms, acks=all writes then complete
    with the two left, and it is added back once it has caught up."""
    settings = {"replica.lag.time.max.ms": 1500, "broker.session.timeout.ms": 10000}
    brokers = {i: cluster(i, **settings) for i in (1, 2, 3)}
    wait_until(lambda: all(len(admin_client(b.bootstrap).list_topics(timeout=10).brokers) == 3
                           for b in brokers.values()), timeout=20, message="three brokers listed")
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("lag"))
    leader = wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    lagging = next(i for i in brokers if i != leader)
    rest = sorted(i for i in brokers if i != lagging)
    os.kill(brokers[lagging].pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        assert _raw_produce(brokers[leader], topic, acks=-1, value=b"during") == 0
        wait_until(lambda: _state(brokers[leader], topic) == (leader, [1, 2, 3], rest), timeout=9, interval=0.1,
                   message="the stopped follower out of the ISR")
        took = time.monotonic() - stopped
        print(f"ISR shrink {took * 1000:.0f} ms after the follower stopped (replica.lag.time.max.ms 1500)")
    finally:
        os.kill(brokers[lagging].pid, signal.SIGCONT)
    wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=30, interval=0.2,
               message="the follower back in the ISR")
    assert _raw_produce(brokers[leader], topic, acks=-1, value=b"after") == 0
    values = [v for _, v in _log_values(brokers[lagging].data_dir, topic)]
    assert b"during" in values
