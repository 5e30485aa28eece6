"""Controlled shutdown and a rolling restart, with real processes and real clients.

What is proven here: SIGTERM to the leader of a replication-factor-3 partition moves
its leadership to another in-sync replica *before* the broker stops (its log says the
handover completed; the survivors name a new leader with a higher epoch at once, not
after a session timeout), while an idempotent acks=all producer writing without pause
sees no error at all and loses nothing; and a rolling restart of all three brokers of
a cluster (each SIGTERMed, restarted, and waited for until every partition is fully
replicated again, as an operator does) under an idempotent acks=all producer and a
consumer group on three partitions loses no acknowledged record, duplicates none, keeps
the order of each partition, and the group consumes everything; with etcd down the
handover cannot happen and the broker stops anyway after the bounded attempts.

Cost: about 30 s (three three-broker clusters; the rolling restart is half of it).
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from .etcd_process import ClusterBroker
from .kafka_helpers import admin_client, consumer_conf, unique_topic, wait_until
from .test_replication import _create_replicated, _fully_replicated, _start_three, _Writer

HANDOVER_MARKER = "controlled shutdown complete"


def test_sigterm_hands_leadership_over_before_stopping(cluster) -> None:
    brokers = _start_three(cluster)
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("handover"))
    leader = wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    writer = _Writer(",".join(b.bootstrap for b in brokers.values()), topic)
    writer.start()
    try:
        wait_until(lambda: len(writer.acks_after(0)) > 100, timeout=30, message="writes flowing")
        victim = brokers[leader]
        mark = victim.log_size()
        stopped = time.monotonic()
        assert victim.stop() == 0
        took = time.monotonic() - stopped
        text = victim.log_text(mark)
        assert HANDOVER_MARKER in text, text[-3000:]
        assert text.index(HANDOVER_MARKER) < text.index("stopped cleanly")
        survivors = {i: b for i, b in brokers.items() if i != leader}
        # the new leader was elected during the handover, not after a session timeout
        successor = wait_until(lambda: _fully_replicated(survivors, topic, sorted(survivors)), timeout=5,
                               interval=0.05, message="a new leader with the two others in the ISR")
        assert successor != leader
        first = wait_until(lambda: writer.acks_after(stopped), timeout=10, interval=0.01,
                           message="an acknowledged write after the SIGTERM")[0]
        with writer.lock:
            whens = sorted(when for _, _, when in writer.acked)
        gap = max(b - a for a, b in zip(whens, whens[1:], strict=False) if b > stopped - 1)
        print(f"controlled shutdown of the leader took {took * 1000:.0f} ms (SIGTERM to exit); first write "
              f"acknowledged {max(0.0, first - stopped) * 1000:.0f} ms after the SIGTERM; longest pause "
              f"between acknowledgements {gap * 1000:.0f} ms")
        victim.start()
        wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=30, interval=0.2,
                   message="the stopped broker back in the ISR")
    finally:
        writer.stop_flag.set()
        writer.join(180)
    assert not writer.is_alive()
    assert writer.failed == [], writer.failed[:10]
    values = _read_all(brokers[leader].bootstrap, topic, 1)[0]
    acked = {value for value, _, _ in writer.acked}
    assert acked <= set(values), f"lost: {sorted(acked - set(values))[:20]}"
    assert len(values) == len(set(values)), "duplicated records"
    assert values == sorted(values), "out of order"


class _SpreadWriter(_Writer):
    """The same idempotent acks=all producer, over ``partitions`` partitions: value v
    goes to partition v % partitions, so each partition's values must stay increasing."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(bootstrap, topic)
        self.partitions = partitions

    def run(self) -> None:
        while not self.stop_flag.is_set():
            value = self.sent + 1
            try:
                self.producer.produce(self.topic, value=str(value).encode(), partition=value % self.partitions,
                                      on_delivery=self._report)
            except BufferError:
                self.producer.poll(0.01)
                continue
            self.sent = value
            self.produced_at[value] = time.monotonic()
            self.producer.poll(0.002)
        self.producer.flush(150)


class _GroupReader(threading.Thread):
    """A consumer in a group, committing automatically, until told to stop."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(consumer_conf(bootstrap, **{
            "group.id": unique_topic("rolling-group"),
            "enable.auto.commit": True,
            "enable.auto.offset.store": True,
            "auto.commit.interval.ms": 200,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }))
        self.topic = topic
        self.values: list[int] = []
        self.errors: list[str] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        self.consumer.subscribe([self.topic])
        try:
            while not self.stop_flag.is_set():
                msg = self.consumer.poll(0.1)
                if msg is None:
                    continue
                if msg.error():
                    self.errors.append(str(msg.error()))
                else:
                    self.values.append(int(msg.value()))
        finally:
            self.consumer.close()


def _all_replicated(brokers: dict[int, ClusterBroker], topics: dict[str, int]) -> bool:
    """Every partition of ``topics`` (name -> partition count) has ISR == replicas with
    a live leader, as every broker's Metadata says (an operator's "no under-replicated
    partitions")."""
    for b in brokers.values():
        meta = admin_client(b.bootstrap).list_topics(timeout=10).topics
        for name, count in topics.items():
            t = meta.get(name)
            if t is None or t.error is not None or len(t.partitions) != count:
                return False
            for p in t.partitions.values():
                if p.leader < 0 or sorted(p.isrs) != sorted(p.replicas):
                    return False
    return True


def _read_all(bootstrap: str, topic: str, partitions: int) -> dict[int, list[int]]:
    """Every value of every partition, read by assignment from offset 0 to the end."""
    consumer = Consumer(consumer_conf(bootstrap))
    out: dict[int, list[int]] = {p: [] for p in range(partitions)}
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in out}
        consumer.assign([TopicPartition(topic, p, 0) for p in out])
        last = {p: -1 for p in out}
        deadline = time.monotonic() + 60
        while any(last[p] < ends[p] - 1 for p in out) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                out[msg.partition()].append(int(msg.value()))
                last[msg.partition()] = msg.offset()
    finally:
        consumer.close()
    return out


def test_rolling_restart_under_load_loses_and_duplicates_nothing(cluster) -> None:
    settings = {"offsets.topic.replication.factor": 3, "offsets.topic.num.partitions": 3,
                "replica.lag.time.max.ms": 10000, "group.initial.rebalance.delay.ms": 0}
    brokers = {i: cluster(i, **settings) for i in (1, 2, 3)}
    wait_until(lambda: all(len(admin_client(b.bootstrap).list_topics(timeout=10).brokers) == 3
                           for b in brokers.values()), timeout=20, message="three brokers listed")
    topic = unique_topic("rolling")
    admin = admin_client(brokers[1].bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3,
                                  config={"min.insync.replicas": "2"})], request_timeout=15)[topic].result(20)
    bootstrap = ",".join(b.bootstrap for b in brokers.values())
    writer = _SpreadWriter(bootstrap, topic, 3)
    reader = _GroupReader(bootstrap, topic)
    writer.start()
    reader.start()
    stops: list[float] = []
    try:
        wait_until(lambda: len(reader.values) > 200, timeout=60, message="the group consuming")
        watched = {topic: 3, "__consumer_offsets": 3}
        for i, b in brokers.items():
            wait_until(lambda: _all_replicated(brokers, watched), timeout=60, interval=0.2,
                       message=f"no under-replicated partitions before restarting broker {i}")
            mark = b.log_size()
            began = time.monotonic()
            assert b.stop() == 0
            stops.append(time.monotonic() - began)
            assert HANDOVER_MARKER in b.log_text(mark)
            b.start()
        wait_until(lambda: _all_replicated(brokers, watched), timeout=60, interval=0.2,
                   message="no under-replicated partitions at the end")
        top = max(value for value, _, _ in writer.acked)
        wait_until(lambda: reader.values and max(reader.values) >= top, timeout=60, message="the group caught up")
        writer.stop_flag.set()
        writer.join(180)
        # what the writer acknowledged after ``top`` reaches the group a moment later
        every = {value for value, _, _ in writer.acked}
        wait_until(lambda: every <= set(reader.values), timeout=30, message="the group read the last writes")
    finally:
        writer.stop_flag.set()
        writer.join(180)
        reader.stop_flag.set()
        reader.join(60)
    assert not writer.is_alive() and not reader.is_alive()
    acked = {value for value, _, _ in writer.acked}
    logs = _read_all(brokers[1].bootstrap, topic, 3)
    values = [v for vs in logs.values() for v in vs]
    lost = sorted(acked - set(values))
    duplicated = len(values) - len(set(values))
    unconsumed = sorted(acked - set(reader.values))
    print(f"rolling restart: {writer.sent} sent, {len(acked)} acknowledged, {len(writer.failed)} failed, "
          f"{len(lost)} lost, {duplicated} duplicated; the group read {len(reader.values)} "
          f"({len(reader.values) - len(set(reader.values))} redelivered); SIGTERM to exit per broker "
          + ", ".join(f"{s * 1000:.0f}" for s in stops) + " ms")
    assert len(acked) > 500
    assert writer.failed == [], writer.failed[:10]
    assert not lost, f"lost acknowledged records: {lost[:20]}"
    assert duplicated == 0
    for p, vs in logs.items():
        assert vs == sorted(vs), f"partition {p} out of order"
        assert all(v % 3 == p for v in vs)
    assert not unconsumed, f"the group never saw: {unconsumed[:20]}"


def test_without_etcd_the_controlled_shutdown_gives_up_in_bounded_time(cluster, etcd) -> None:
    """With the metadata unreachable nobody can move leadership: the broker tries
    controlled.shutdown.max.retries times, each bounded by controlled.shutdown.retry.backoff.ms,
    and then stops anyway, cleanly."""
    settings = {"controlled.shutdown.max.retries": 2, "controlled.shutdown.retry.backoff.ms": 500}
    brokers = _start_three(cluster, **settings)
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("noetcd"))
    leader = wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    victim = brokers[leader]
    mark = victim.log_size()
    etcd.kill9()
    try:
        began = time.monotonic()
        assert victim.stop() == 0
        took = time.monotonic() - began
    finally:
        etcd.start()
    text = victim.log_text(mark)
    assert "controlled shutdown did not complete after 2 attempts" in text, text[-3000:]
    print(f"controlled shutdown without etcd gave up and stopped in {took * 1000:.0f} ms")
    assert 0.9 < took < 10  # two attempts of 500 ms, then the ordinary stop
