"""Helpers for cluster tests with real processes (three brokers, a replicated topic,
an idempotent acks=all writer that never pauses); shared by the replication and fault
tests and by bench/failover.py."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from moldau.protocol.messages import ALL_APIS
from moldau.records import RecordInput, build_batch, decode_records, iter_batches
from moldau.replication.client import BrokerClient, codec_for

from .broker_process import Broker
from .etcd_process import ClusterBroker
from .kafka_helpers import admin_client, consumer_conf, wait_until


def start_three(cluster, **settings: object) -> dict[int, ClusterBroker]:
    """Brokers 1, 2 and 3 of ``cluster`` (the conftest fixture), once each lists all three."""
    brokers = {i: cluster(i, **{"replica.lag.time.max.ms": 10000, **settings}) for i in (1, 2, 3)}
    wait_until(lambda: all(len(admin_client(b.bootstrap).list_topics(timeout=10).brokers) == 3
                           for b in brokers.values()), timeout=20, message="three brokers listed")
    return brokers


def create_replicated(bootstrap: str, name: str) -> str:
    admin = admin_client(bootstrap)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=3, config={"min.insync.replicas": "2"})],
        request_timeout=15,
    )
    futures[name].result(timeout=20)
    return name


def state(broker: ClusterBroker, topic: str) -> tuple[int, list[int], list[int]] | None:
    """(leader, replicas, isr) of partition 0 as ``broker``'s Metadata says."""
    meta = admin_client(broker.bootstrap).list_topics(topic=topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None or 0 not in meta.partitions:
        return None
    p = meta.partitions[0]
    return p.leader, sorted(p.replicas), sorted(p.isrs)


def fully_replicated(brokers: dict[int, ClusterBroker], topic: str, ids: list[int]) -> int | None:
    """The leader once every given broker reports the ISR as ``ids`` and one same leader."""
    states = [state(brokers[i], topic) for i in ids]
    if all(s is not None and s[2] == ids for s in states) and len({s[0] for s in states}) == 1:
        return states[0][0]
    return None


def log_values(data_dir: Path, topic: str) -> list[tuple[int, bytes | None]]:
    """(offset, value) of every record in a broker's log of partition 0, from its files."""
    out = []
    for path in sorted((data_dir / f"{topic}-0").glob("*.log")):
        for batch in iter_batches(path.read_bytes(), allow_partial_tail=True):
            out += [(r.offset, r.value) for r in decode_records(batch)]
    return out


def records_on_disk(data_dir: Path, topic: str) -> int:
    total = 0
    for path in sorted((data_dir / f"{topic}-0").glob("*.log")):
        for batch in iter_batches(path.read_bytes(), allow_partial_tail=True):
            total += batch.last_offset_delta + 1
    return total


def raw_produce(broker: ClusterBroker, topic: str, acks: int, value: bytes = b"raw") -> int:
    """One Produce v9 request with one record; the partition's error code."""
    api = ALL_APIS[0]
    codec = codec_for(api)
    request = codec.Request(
        transactional_id=None,
        acks=acks,
        timeout_ms=5000,
        topic_data=[codec.Request.of("topic_data")(
            name=topic,
            partition_data=[codec.Request.of("topic_data").of("partition_data")(
                index=0, records=build_batch([RecordInput(b"k", value)]),
            )],
        )],
    )

    response = raw_request(broker, api, 9, request)
    return response.responses[0].partition_responses[0].error_code


def raw_request(broker: ClusterBroker | Broker, api: Any, version: int, request: Any, timeout: float = 20.0) -> Any:
    """One request on a connection of its own, for fields the client libraries do not
    expose; its decoded response."""

    async def send() -> Any:
        client = BrokerClient(broker.host, broker.port, "it-raw")
        try:
            return await client.request(api, version, request, timeout=timeout)
        finally:
            await client.close()

    return asyncio.run(send())


def election_delay(brokers: dict[int, ClusterBroker], marks: dict[int, int], topic: str, victim: int,
                   killed_wall: float) -> float | None:
    """Seconds from the kill to the controller's log line electing a new leader."""
    import datetime

    for i, b in brokers.items():
        if i == victim:
            continue
        for line in b.log_text(marks[i]).splitlines():
            if f"{topic}-0: leader {victim} -> " in line:
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                return stamp.timestamp() - killed_wall
    return None


class AckedWriter(threading.Thread):
    """An idempotent acks=all producer writing 1, 2, 3, ... without pause."""

    def __init__(self, bootstrap: str, topic: str, **conf: object) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 120000,
            "socket.timeout.ms": 10000,
            "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 250,  # librdkafka's default 1000 would hide the broker side
            "topic.metadata.refresh.interval.ms": 1000,
            **conf,
        })
        self.acked: list[tuple[int, int, float]] = []  # (value, offset, when)
        self.produced_at: dict[int, float] = {}
        self.failed: list[tuple[int, str]] = []
        self.sent = 0
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()

    def _report(self, err, msg) -> None:
        value = int(msg.value())
        with self.lock:
            if err is None:
                self.acked.append((value, msg.offset(), time.monotonic()))
            else:
                self.failed.append((value, str(err)))

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.sent += 1
            self.produced_at[self.sent] = time.monotonic()
            try:
                self.producer.produce(self.topic, value=str(self.sent).encode(), partition=0,
                                      on_delivery=self._report)
            except BufferError:
                self.sent -= 1
            self.producer.poll(0.002)
        self.producer.flush(150)

    def acks_after(self, moment: float) -> list[float]:
        """When records produced after ``moment`` were acknowledged (with the leader
        killed at ``moment``, necessarily by its successor)."""
        out = []
        with self.lock:
            # newest first, back to the moment: a record produced after it was acked
            # after it too (a scan of everything would slow the writer it watches)
            for value, _, when in reversed(self.acked):
                if when < moment:
                    break
                if self.produced_at.get(value, 0) > moment:
                    out.append(when)
        return sorted(out)


class Reader(threading.Thread):
    """A consumer reading partition 0 from the start without pause; ``values`` in
    order, ``times`` when each was read. With ``group``, a member of that consumer
    group (subscribed, committing every 200 ms), else assigned the partition."""

    def __init__(self, bootstrap: str, topic: str, group: str | None = None) -> None:
        super().__init__(daemon=True)
        conf: dict[str, object] = {"topic.metadata.refresh.interval.ms": 1000}
        if group is not None:
            conf.update({"group.id": group, "enable.auto.commit": True, "enable.auto.offset.store": True,
                         "auto.commit.interval.ms": 200, "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 500})
        self.consumer = Consumer(consumer_conf(bootstrap, **conf))
        if group is None:
            self.consumer.assign([TopicPartition(topic, 0, 0)])
        else:
            self.consumer.subscribe([topic])
        self.values: list[int] = []
        self.times: list[float] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop_flag.is_set():
                msg = self.consumer.poll(0.1)
                if msg is not None and not msg.error():
                    self.values.append(int(msg.value()))
                    self.times.append(time.monotonic())
        finally:
            self.consumer.close()

    def read_after(self, moment: float) -> int:
        return sum(1 for t in self.times if t > moment)


def committed(bootstrap: str, group: str, topic: str) -> int:
    """The offset ``group`` has committed for partition 0 of ``topic`` (-1: none)."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    admin = admin_client(bootstrap)  # kept alive until its future resolves
    answer = admin.list_consumer_group_offsets([request], request_timeout=10)[group]
    return answer.result(timeout=15).topic_partitions[0].offset


def read_all(bootstrap: str, topic: str, timeout: float = 60.0) -> list[int]:
    """Every value of partition 0, from offset 0 up to the high watermark as it is now."""
    consumer = Consumer(consumer_conf(bootstrap))
    values: list[int] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=20)
        deadline = time.monotonic() + timeout
        last = -1
        while last < high - 1 and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.append(int(msg.value()))
                last = msg.offset()
    finally:
        consumer.close()
    return values


def losses(writer: AckedWriter, values: list[int]) -> tuple[list[int], list[int], bool]:
    """(acknowledged values missing from ``values``, values read more than once,
    whether the acknowledged ones are in the order they were written)."""
    acked = {value for value, _, _ in writer.acked}
    seen: dict[int, int] = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
    lost = sorted(v for v in acked if v not in seen)
    duplicated = sorted(v for v, n in seen.items() if n > 1)
    in_log_order = [v for v in values if v in acked]
    return lost, duplicated, in_log_order == sorted(in_log_order)
