"""The transaction coordinator with real clients: confluent-kafka's (librdkafka),
kafka-python's and aiokafka's transactional producers against a real broker process.

What these prove (issue 10, coordinator side): transactions commit and abort, their
markers land in every partition of the transaction (a control batch each, counted in
the partition's end offset), offsets sent with send_offsets_to_transaction become the
group's committed offsets only with the commit, a second producer with the same
transactional.id fences the first, an abandoned transaction is aborted at its timeout,
the state survives a kill -9 of the broker, kafka-python's admin client describes and
lists transactions, and a read_committed consumer sees exactly the committed records.

Cost: about 30-40 s on 2 cores (several broker starts, one wait for a timeout).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaProducer, OffsetAndMetadata
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError as KafkaPythonError

from .kafka_helpers import create_topic, describe_transaction, read_to_end, wait_until, watermarks

CLEANUP_MS = 300


def txn_producer(bootstrap: str, txn_id: str, **conf: object) -> Producer:
    base: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 10000,
        "socket.timeout.ms": 10000,
    }
    base.update(conf)
    return Producer(base)


def state_of(bootstrap: str, txn_id: str) -> str:
    state = describe_transaction(bootstrap, txn_id).state
    return getattr(state, "value", str(state))


def committed_offset(bootstrap: str, group: str, topic: str, partition: int) -> int:
    """The group's committed offset as kafka-python's admin reads it (OffsetFetch
    without require_stable): -1 while a transaction's offsets are pending."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    for tp, meta in offsets.items():
        if (tp.topic, tp.partition) == (topic, partition):
            return meta.offset
    return -1


def stable_committed(bootstrap: str, group: str, topic: str, partition: int, timeout: float) -> int:
    """librdkafka's committed(): OffsetFetch with require_stable (retried while the
    broker answers UNSTABLE_OFFSET_COMMIT)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        [tp] = c.committed([TopicPartition(topic, partition)], timeout=timeout)
        return tp.offset
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str, expected: list[int]) -> None:
    """Wait until the partitions' end offsets are ``expected`` (markers are written just
    after EndTxn is answered, as in Kafka)."""
    def check() -> bool:
        return [watermarks(bootstrap, topic, i)[1] for i in range(len(expected))] == expected

    wait_until(check, timeout=10, interval=0.05)


def test_confluent_commit_abort_markers_and_offsets(make_broker, topic):
    broker = make_broker()
    bootstrap = broker.bootstrap
    create_topic(bootstrap, topic, 2)
    p = txn_producer(bootstrap, "eos-1")
    p.init_transactions(30)

    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=b"commit-%d" % i, partition=i % 2)
    p.commit_transaction(30)
    # each partition: 5 records and a commit marker
    end_offsets(bootstrap, topic, [6, 6])
    assert state_of(bootstrap, "eos-1") == "CompleteCommit"

    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=b"abort-%d" % i, partition=0)
    p.flush(10)  # librdkafka purges what it has not sent when it aborts
    p.abort_transaction(30)
    # the abort marker after the records; partition 1 was not in this transaction
    end_offsets(bootstrap, topic, [6 + 4 + 1, 6])
    assert state_of(bootstrap, "eos-1") == "CompleteAbort"

    # consume-transform-produce: offsets commit with the transaction, or not at all
    group = f"g-{topic}"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        p.begin_transaction()
        p.produce(topic, value=b"out-1", partition=1)
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 3)], c.consumer_group_metadata(), 30)
        assert committed_offset(bootstrap, group, topic, 0) < 0  # pending until the marker
        with pytest.raises(KafkaException):  # UNSTABLE_OFFSET_COMMIT, retried to the timeout
            stable_committed(bootstrap, group, topic, 0, timeout=2)
        p.abort_transaction(30)
        assert committed_offset(bootstrap, group, topic, 0) < 0
        assert stable_committed(bootstrap, group, topic, 0, timeout=10) < 0
        p.begin_transaction()
        p.produce(topic, value=b"out-2", partition=1)
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        wait_until(lambda: committed_offset(bootstrap, group, topic, 0) == 5, timeout=10, interval=0.05)
        assert stable_committed(bootstrap, group, topic, 0, timeout=10) == 5
    finally:
        c.close()
    # librdkafka skips control records: a read_uncommitted reader sees every data record
    seen = read_to_end(bootstrap, topic, 2, "read_uncommitted", timeout=15, must_reach_end=False)
    assert sorted(seen) == sorted(
        [b"commit-%d" % i for i in range(10)] + [b"abort-%d" % i for i in range(4)] + [b"out-1", b"out-2"]
    )


def test_read_committed_sees_exactly_the_committed_records(make_broker, topic):
    broker = make_broker()
    create_topic(broker.bootstrap, topic, 2)
    p = txn_producer(broker.bootstrap, "eos-rc")
    p.init_transactions(30)
    for n, commit in enumerate([True, False, True]):
        p.begin_transaction()
        for i in range(6):
            p.produce(topic, value=b"%d-%d" % (n, i), partition=i % 2)
        (p.commit_transaction if commit else p.abort_transaction)(30)
    seen = read_to_end(broker.bootstrap, topic, 2, "read_committed", timeout=15, must_reach_end=False)
    assert sorted(seen) == sorted(b"%d-%d" % (n, i) for n in (0, 2) for i in range(6))


def test_a_second_producer_fences_the_first(make_broker, topic):
    broker = make_broker()
    create_topic(broker.bootstrap, topic, 1)
    old = txn_producer(broker.bootstrap, "fence-me")
    old.init_transactions(30)
    old.begin_transaction()
    old.produce(topic, value=b"from-the-old-one", partition=0)
    old.flush(10)
    first = describe_transaction(broker.bootstrap, "fence-me")
    assert getattr(first.state, "value", first.state) == "Ongoing" and first.producer_epoch == 0

    new = txn_producer(broker.bootstrap, "fence-me")
    new.init_transactions(30)  # aborts the old one's transaction, then bumps the epoch again
    after = describe_transaction(broker.bootstrap, "fence-me")
    assert after.producer_id == first.producer_id and after.producer_epoch == 2
    assert getattr(after.state, "value", after.state) == "Empty"
    end_offsets(broker.bootstrap, topic, [2])  # the record and an abort marker

    with pytest.raises(KafkaException) as raised:
        old.commit_transaction(15)
    assert raised.value.args[0].fatal()  # librdkafka: _FENCED, "fenced by a newer instance"
    new.begin_transaction()
    new.produce(topic, value=b"from-the-new-one", partition=0)
    new.commit_transaction(30)


def test_an_abandoned_transaction_is_aborted_at_its_timeout(make_broker, topic):
    broker = make_broker(**{"transaction.abort.timed.out.transaction.cleanup.interval.ms": CLEANUP_MS})
    create_topic(broker.bootstrap, topic, 1)
    p = txn_producer(broker.bootstrap, "abandoned", **{"transaction.timeout.ms": 2000, "socket.timeout.ms": 2000})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, value=b"left-open", partition=0)
    p.flush(10)
    assert state_of(broker.bootstrap, "abandoned") == "Ongoing"
    started = time.monotonic()
    wait_until(lambda: state_of(broker.bootstrap, "abandoned") == "CompleteAbort", timeout=15, interval=0.2)
    assert time.monotonic() - started < 2.0 + CLEANUP_MS / 1000 + 5
    end_offsets(broker.bootstrap, topic, [2])  # the abort marker
    assert describe_transaction(broker.bootstrap, "abandoned").producer_epoch == 1  # the producer was fenced


def test_state_survives_a_kill_and_restart(make_broker, topic):
    broker = make_broker()
    create_topic(broker.bootstrap, topic, 1)
    p = txn_producer(broker.bootstrap, "durable")
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, value=b"kept", partition=0)
    p.commit_transaction(30)
    p.begin_transaction()
    p.produce(topic, value=b"open", partition=0)
    p.flush(10)
    before = describe_transaction(broker.bootstrap, "durable")
    broker.kill9()
    broker.start()
    after = describe_transaction(broker.bootstrap, "durable")
    assert (after.producer_id, after.producer_epoch) == (before.producer_id, before.producer_epoch)
    assert getattr(after.state, "value", after.state) == "Ongoing"
    again = txn_producer(broker.bootstrap, "durable")
    again.init_transactions(30)  # the open transaction is aborted first
    final = describe_transaction(broker.bootstrap, "durable")
    assert final.producer_epoch == before.producer_epoch + 2
    end_offsets(broker.bootstrap, topic, [4])  # kept, commit marker, open, abort marker


def test_kafka_python_transactions_and_admin(make_broker, topic):
    broker = make_broker()
    create_topic(broker.bootstrap, topic, 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kp-txn", request_timeout_ms=10000)
    try:
        p.init_transactions()
        p.begin_transaction()
        for i in range(3):
            p.send(topic, value=b"kp-%d" % i, partition=0)
        p.send_offsets_to_transaction({KpTopicPartition(topic, 0): OffsetAndMetadata(2, "", -1)}, "kp-group")
        p.commit_transaction()
        p.begin_transaction()
        p.send(topic, value=b"kp-aborted", partition=0)
        p.flush(10)
        p.abort_transaction()
    finally:
        p.close(timeout=10)
    end_offsets(broker.bootstrap, topic, [3 + 1 + 1 + 1])
    assert committed_offset(broker.bootstrap, "kp-group", topic, 0) == 2
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        listed = [t for listings in admin.list_transactions().values() for t in listings]
        assert "kp-txn" in [t.transactional_id for t in listed]
        only_ongoing = admin.list_transactions(state_filters=["Ongoing"])
        assert all(t.transactional_id != "kp-txn" for ts in only_ongoing.values() for t in ts)
        with pytest.raises(KafkaPythonError):
            admin.describe_transactions(["never-seen"])
    finally:
        admin.close()


def test_aiokafka_transactions(make_broker, topic):
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTopicPartition

    broker = make_broker()
    create_topic(broker.bootstrap, topic, 2)

    async def scenario() -> None:
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="aio-txn")
        await p.start()
        try:
            async with p.transaction():
                for i in range(4):
                    await p.send_and_wait(topic, b"aio-%d" % i, partition=i % 2)
                await p.send_offsets_to_transaction({AioTopicPartition(topic, 1): 9}, "aio-group")
            await p.begin_transaction()
            await p.send_and_wait(topic, b"aio-aborted", partition=0)
            await p.abort_transaction()
        finally:
            await p.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    end_offsets(broker.bootstrap, topic, [2 + 1 + 1 + 1, 2 + 1])
    assert state_of(broker.bootstrap, "aio-txn") == "CompleteAbort"
    assert committed_offset(broker.bootstrap, "aio-group", topic, 1) == 9
