"""Faults of ``moldau.testing.Broker`` reach real clients as Kafka's errors, and the
clients recover: confluent-kafka, kafka-python and aiokafka against the plugin's own
fixtures. Brokers run in threads (one per test, ~10-50 ms each) except the kill -9
test's process. Cost: 17 s idle, ~30 s on 2 busy cores."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import TopicAuthorizationFailedError
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.errors import GroupAuthorizationFailedError, RequestTimedOutError

from integration.kafka_helpers import confluent_consume, create_topic, producer_conf, wait_until
from moldau.testing import Broker


def _topic() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _produce(bootstrap: str, topic: str, values: list[bytes], **conf: object) -> list[tuple[object, int]]:
    p = Producer(producer_conf(bootstrap, **conf))
    out: list[tuple[object, int]] = []
    for v in values:
        p.produce(topic, v, partition=0, on_delivery=lambda e, m: out.append((e, m.offset())))
    assert p.flush(30) == 0
    return out


# ----------------------------------------------------------------- confluent-kafka

def test_confluent_producer_retries_not_leader(moldau_broker: Broker) -> None:
    topic = _topic()
    create_topic(moldau_broker.bootstrap, topic)
    moldau_broker.fail("Produce", "NOT_LEADER_OR_FOLLOWER", count=3)
    assert _produce(moldau_broker.bootstrap, topic, [b"a", b"b"]) == [(None, 0), (None, 1)]
    assert moldau_broker.counts()["injected"] == {"0": 3}
    # each error after a delay (rd_kafka_mock_broker_push_request_error_rtts)
    moldau_broker.push_errors("Produce", "NOT_LEADER_OR_FOLLOWER", "REQUEST_TIMED_OUT", delay_ms=400)
    began = time.monotonic()
    assert _produce(moldau_broker.bootstrap, topic, [b"c"]) == [(None, 2)]
    assert time.monotonic() - began >= 0.8
    assert moldau_broker.counts()["injected"] == {"0": 5}


def test_confluent_producer_gives_up_on_non_retriable(moldau_broker: Broker) -> None:
    topic = _topic()
    create_topic(moldau_broker.bootstrap, topic)
    moldau_broker.fail("Produce", "RECORD_LIST_TOO_LARGE")
    results = _produce(moldau_broker.bootstrap, topic, [b"a"])
    assert results[0][0].code() == KafkaError.RECORD_LIST_TOO_LARGE  # Kafka's error, as sent
    assert _produce(moldau_broker.bootstrap, topic, [b"b"]) == [(None, 0)]  # then it works again


def test_confluent_commit_fails_with_injected_error(moldau_broker: Broker) -> None:
    topic = _topic()
    create_topic(moldau_broker.bootstrap, topic)
    _produce(moldau_broker.bootstrap, topic, [b"a"])
    c = Consumer({"bootstrap.servers": moldau_broker.bootstrap, "group.id": "g-" + topic,
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        msg = None
        deadline = time.monotonic() + 20
        while msg is None and time.monotonic() < deadline:
            msg = c.poll(0.2)
        assert msg is not None and not msg.error()
        moldau_broker.fail("OffsetCommit", "GROUP_AUTHORIZATION_FAILED")
        with pytest.raises(KafkaException) as raised:
            c.commit(message=msg, asynchronous=False)
        assert raised.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
        c.commit(message=msg, asynchronous=False)  # the next commit goes through
        assert c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 1
    finally:
        c.close()


def test_confluent_survives_dropped_connections_and_pause(moldau_broker: Broker) -> None:
    topic = _topic()
    create_topic(moldau_broker.bootstrap, topic)
    p = Producer(producer_conf(moldau_broker.bootstrap))
    done: list[tuple[object, int]] = []
    p.produce(topic, b"0", partition=0, on_delivery=lambda e, m: done.append((e, m.offset())))
    assert p.flush(20) == 0
    assert moldau_broker.drop_connections() >= 1
    with moldau_broker.paused_for():
        p.produce(topic, b"1", partition=0, on_delivery=lambda e, m: done.append((e, m.offset())))
        p.poll(1.0)
        assert len(done) == 1  # held while paused
    assert p.flush(20) == 0
    assert done == [(None, 0), (None, 1)]


# ------------------------------------------------------------------- kafka-python

def test_kafka_python_latency_times_out_then_recovers(moldau_broker: Broker) -> None:
    topic = _topic()
    create_topic(moldau_broker.bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=moldau_broker.bootstrap, request_timeout_ms=1000, retries=0,
                             max_block_ms=5000)
    try:
        producer.send(topic, b"warm", partition=0).get(timeout=10)
        moldau_broker.set_latency(2500, api="Produce")
        with pytest.raises(RequestTimedOutError):
            producer.send(topic, b"late", partition=0).get(timeout=10)
        moldau_broker.set_latency(0, api="Produce")
        meta = producer.send(topic, b"again", partition=0).get(timeout=10)
        assert meta.offset >= 1
    finally:
        producer.close(timeout=5)


def test_kafka_python_coordinator_not_available_is_retried(moldau_broker: Broker) -> None:
    topic = _topic()
    create_topic(moldau_broker.bootstrap, topic)
    _produce(moldau_broker.bootstrap, topic, [b"a", b"b"])
    moldau_broker.fail("FindCoordinator", "COORDINATOR_NOT_AVAILABLE", count=2)
    consumer = KafkaConsumer(topic, bootstrap_servers=moldau_broker.bootstrap, group_id="g-" + topic,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=15000)
    try:
        values = []
        for msg in consumer:
            values.append(msg.value)
            if len(values) == 2:
                break
        assert values == [b"a", b"b"]
        moldau_broker.fail("OffsetCommit", "COORDINATOR_NOT_AVAILABLE")
        consumer.commit()  # retried after finding the coordinator again
        assert moldau_broker.counts()["injected"] == {"10": 2, "8": 1}
        moldau_broker.fail("OffsetCommit", "GROUP_AUTHORIZATION_FAILED")
        with pytest.raises(GroupAuthorizationFailedError):
            consumer.commit()
        assert consumer.committed(KTopicPartition(topic, 0)) == 2
    finally:
        consumer.close()


# ------------------------------------------------------------------------ aiokafka

class _Counting(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.assigned = 0

    async def on_partitions_revoked(self, revoked: object) -> None:
        pass

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.assigned += 1


def test_aiokafka_rebalance_and_request_timeout(moldau_broker: Broker) -> None:
    asyncio.run(_aiokafka_rebalance_and_request_timeout(moldau_broker))


async def _aiokafka_rebalance_and_request_timeout(moldau_broker: Broker) -> None:
    topic = _topic()
    await asyncio.to_thread(create_topic, moldau_broker.bootstrap, topic)
    group = "g-" + topic
    listener = _Counting()
    consumer = AIOKafkaConsumer(bootstrap_servers=moldau_broker.bootstrap, group_id=group,
                                auto_offset_reset="earliest", heartbeat_interval_ms=200)
    consumer.subscribe([topic], listener=listener)
    producer = AIOKafkaProducer(bootstrap_servers=moldau_broker.bootstrap, request_timeout_ms=1000)
    await consumer.start()
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"one", partition=0)
        assert (await asyncio.wait_for(consumer.getone(), 20)).value == b"one"
        assert listener.assigned == 1
        await asyncio.to_thread(moldau_broker.rebalance, group)
        for _ in range(100):  # the next heartbeat says REBALANCE_IN_PROGRESS; it joins again
            if listener.assigned >= 2:
                break
            await asyncio.sleep(0.1)
        assert listener.assigned == 2
        await asyncio.to_thread(moldau_broker.fail, "Produce", "REQUEST_TIMED_OUT", 2)
        await producer.send_and_wait(topic, b"two", partition=0)  # retried twice
        assert (await asyncio.to_thread(moldau_broker.counts))["injected"] == {"0": 2}
        got = await asyncio.wait_for(consumer.getone(), 20)
        assert got.value == b"two"
        await asyncio.to_thread(moldau_broker.fail, "Produce", "TOPIC_AUTHORIZATION_FAILED", 1)
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topic, b"refused", partition=0)
    finally:
        await producer.stop()
        await consumer.stop()


# ------------------------------------------------------------ kill and restart

@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
def test_kill_and_restart_keeps_acknowledged_records(moldau_broker_factory, process: bool) -> None:
    broker: Broker = moldau_broker_factory(process=process)
    topic = _topic()
    create_topic(broker.bootstrap, topic)
    values = [f"v{i}".encode() for i in range(200)]
    assert all(e is None for e, _ in _produce(broker.bootstrap, topic, values, acks="all"))
    broker.kill()
    assert not broker.is_running()
    assert not (broker.data_dir / ".kafka_cleanshutdown").exists()  # an unclean stop: logs recovered
    broker.start()
    got = confluent_consume(broker.bootstrap, topic, len(values))
    assert [g.value for g in got] == values

    # paused (SIGSTOP for a process): nothing answered until resumed, then delivered
    p = Producer(producer_conf(broker.bootstrap))
    done: list[tuple[object, int]] = []
    p.produce(topic, b"before", partition=0, on_delivery=lambda e, m: done.append((e, m.offset())))
    assert p.flush(20) == 0
    with broker.paused_for():
        p.produce(topic, b"paused", partition=0, on_delivery=lambda e, m: done.append((e, m.offset())))
        p.poll(1.0)
        assert len(done) == 1
    assert p.flush(20) == 0
    assert done == [(None, 200), (None, 201)]
    assert broker.drop_connections() >= 1
    broker.stop()
    assert (broker.data_dir / ".kafka_cleanshutdown").exists()


def test_async_with_broker() -> None:
    asyncio.run(_async_with_broker())


async def _async_with_broker() -> None:
    async with Broker({"num.partitions": 2}) as broker:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            meta = await producer.send_and_wait("auto-created", b"x")
            assert meta.offset == 0
            assert len(await producer.partitions_for("auto-created")) == 2
        finally:
            await producer.stop()
    assert not broker.is_running()
    assert not broker.work_dir.exists()


def test_plain_with_broker_start_time() -> None:
    with Broker() as first:
        pass
    with Broker() as second:  # warm: Moldau already imported
        assert second.started_in_s < 0.3, second.started_in_s
        wait_until(lambda: second.is_running(), 1)
    assert first.port and not second.is_running()


def test_confluent_kip848_group_takes_a_new_epoch(moldau_broker: Broker) -> None:
    topic = _topic()
    create_topic(moldau_broker.bootstrap, topic, partitions=2)
    _produce(moldau_broker.bootstrap, topic, [b"a"])
    group = "g-" + topic
    assigned: list[int] = []
    c = Consumer({"bootstrap.servers": moldau_broker.bootstrap, "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic], on_assign=lambda consumer, parts: assigned.append(len(parts)))
    try:
        msg = None
        deadline = time.monotonic() + 30
        while (msg is None or msg.error()) and time.monotonic() < deadline:
            msg = c.poll(0.2)
        assert msg is not None and msg.value() == b"a"
        answer = moldau_broker.rebalance(group)
        assert answer["protocol"] == "consumer" and answer["epoch"] >= 2
        _produce(moldau_broker.bootstrap, topic, [b"b"])
        msg = None
        deadline = time.monotonic() + 30
        while (msg is None or msg.error()) and time.monotonic() < deadline:
            msg = c.poll(0.2)
        assert msg is not None and msg.value() == b"b"  # still consuming under the new epoch
        assert sum(assigned) == 2
    finally:
        c.close()


def test_kafka_python_producer_waits_out_a_broker_set_down(moldau_broker: Broker) -> None:
    topic = _topic()
    create_topic(moldau_broker.bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=moldau_broker.bootstrap, retries=20, retry_backoff_ms=100,
                             reconnect_backoff_ms=50, reconnect_backoff_max_ms=200, request_timeout_ms=5000)
    try:
        assert producer.send(topic, b"up", partition=0).get(timeout=10).offset == 0
        assert moldau_broker.set_down() >= 1
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((moldau_broker.host, moldau_broker.port), timeout=2).close()
        pending = producer.send(topic, b"while down", partition=0)
        time.sleep(0.5)
        assert not pending.is_done
        moldau_broker.set_up()
        assert pending.get(timeout=20).offset == 1  # reconnected and delivered; nothing was lost
    finally:
        producer.close(timeout=5)
