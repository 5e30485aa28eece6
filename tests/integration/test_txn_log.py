"""Transactions on the partition leader: transactional produce, WriteTxnMarkers, the last
stable offset and the aborted index, read by real consumers in both isolation levels.

The transaction coordinator's part is played by raw requests (tests/integration/
raw_kafka.py): transactional batches from made-up producer ids, then WriteTxnMarkers as
a coordinator sends it. Consumers: confluent-kafka, kafka-python and aiokafka. Cost: two
broker processes and one kill -9, about 45 s (mostly the consumers' waits for nothing
more to arrive).
"""

from __future__ import annotations

import asyncio
import time

from kafka import KafkaConsumer, TopicPartition

from .kafka_helpers import confluent_consume, create_topic, unique_topic, wait_until
from .raw_kafka import describe_producers, raw_produce, record_batch, write_txn_markers
from .test_aiokafka import consume as aiokafka_consume
from .test_replication import _create_replicated, _fully_replicated, _start_three

INVALID_PRODUCER_EPOCH = 47
TRANSACTION_COORDINATOR_FENCED = 52
UNKNOWN_TOPIC_OR_PARTITION = 3

COMMITTED = {"isolation.level": "read_committed"}
UNCOMMITTED = {"isolation.level": "read_uncommitted"}


def _txn(bootstrap: str, topic: str, pid: int, epoch: int, seq: int, values: list[bytes]) -> int:
    batch = record_batch(values, int(time.time() * 1000), producer_id=pid, producer_epoch=epoch,
                         base_sequence=seq, transactional=True)
    error, base = raw_produce(bootstrap, topic, 0, batch)
    assert error == 0, f"transactional produce refused with {error}"
    return base


def _plain(bootstrap: str, topic: str, value: bytes) -> int:
    error, base = raw_produce(bootstrap, topic, 0, record_batch([value], int(time.time() * 1000)))
    assert error == 0
    return base


def _values(bootstrap: str, topic: str, count: int, conf: dict[str, object]) -> list[bytes]:
    got = confluent_consume(bootstrap, topic, count, timeout=20, extra_wait=1.5, **conf)
    return [g.value for g in got]


def _end_offset(bootstrap: str, topic: str, isolation: str) -> int:
    """ListOffsets latest through kafka-python in ``isolation``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                             request_timeout_ms=10000)
    try:
        tp = TopicPartition(topic, 0)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def _kafka_python_values(bootstrap: str, topic: str, isolation: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=2500, request_timeout_ms=10000)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        out: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(out) < expected and time.monotonic() < deadline:
            out += [m.value for m in consumer]
        out += [m.value for m in consumer]  # nothing more arrives
        return out
    finally:
        consumer.close()


def test_read_committed_sees_exactly_committed_records_across_a_crash(broker, topic) -> None:
    bootstrap = broker.bootstrap
    create_topic(bootstrap, topic)
    _plain(bootstrap, topic, b"plain-0")  # 0
    a_first = _txn(bootstrap, topic, 1001, 0, 0, [b"a1", b"a2"])  # 1-2
    _txn(bootstrap, topic, 2002, 0, 0, [b"b1", b"b2"])  # 3-4
    _plain(bootstrap, topic, b"plain-1")  # 5

    # both transactions open: read_committed stops at the first one
    assert _end_offset(bootstrap, topic, "read_committed") == a_first == 1
    assert _end_offset(bootstrap, topic, "read_uncommitted") == 6
    assert _values(bootstrap, topic, 1, COMMITTED) == [b"plain-0"]

    # the coordinator commits A and aborts B (epoch bumped, as on a fencing abort)
    errors = write_txn_markers(bootstrap, [
        (1001, 0, True, 5, {topic: [0]}),
        (2002, 1, False, 5, {topic: [0], "no-such-topic": [0]}),
    ])
    assert errors == {(1001, topic, 0): 0, (2002, topic, 0): 0, (2002, "no-such-topic", 0): UNKNOWN_TOPIC_OR_PARTITION}

    # a second transaction of A stays open over the crash below
    a3 = _txn(bootstrap, topic, 1001, 0, 2, [b"a3"])  # 8
    _plain(bootstrap, topic, b"plain-2")  # 9

    committed = [b"plain-0", b"a1", b"a2", b"plain-1"]
    everything = [b"plain-0", b"a1", b"a2", b"b1", b"b2", b"plain-1", b"a3", b"plain-2"]
    assert _values(bootstrap, topic, 4, COMMITTED) == committed
    assert _values(bootstrap, topic, 8, UNCOMMITTED) == everything
    assert _kafka_python_values(bootstrap, topic, "read_committed", 4) == committed
    assert _kafka_python_values(bootstrap, topic, "read_uncommitted", 8) == everything
    assert _end_offset(bootstrap, topic, "read_committed") == a3

    # bad input: the fenced epoch of B, a coordinator epoch older than the last marker's
    stale = record_batch([b"zombie"], int(time.time() * 1000), producer_id=2002, producer_epoch=0,
                         base_sequence=2, transactional=True)
    assert raw_produce(bootstrap, topic, 0, stale)[0] == INVALID_PRODUCER_EPOCH
    assert write_txn_markers(bootstrap, [(1001, 0, True, 4, {topic: [0]})]) == {
        (1001, topic, 0): TRANSACTION_COORDINATOR_FENCED
    }

    error, producers = describe_producers(bootstrap, topic, 0)
    assert error == 0
    by_id = {p[0]: p for p in producers}
    # (id, epoch, last sequence, last timestamp, coordinator epoch, open txn start)
    assert by_id[1001][1:3] == (0, 2) and by_id[1001][4:] == (5, a3)
    assert by_id[2002][1] == 1 and by_id[2002][4:] == (5, -1)

    broker.kill9()
    broker.start()
    # after the crash: the open transaction still holds the LSO, B is still aborted
    assert _end_offset(bootstrap, topic, "read_committed") == a3
    assert _values(bootstrap, topic, 4, COMMITTED) == committed
    assert _kafka_python_values(bootstrap, topic, "read_committed", 4) == committed

    assert write_txn_markers(bootstrap, [(1001, 0, True, 5, {topic: [0]})]) == {(1001, topic, 0): 0}
    assert _end_offset(bootstrap, topic, "read_committed") == 11
    assert _values(bootstrap, topic, 6, COMMITTED) == committed + [b"a3", b"plain-2"]


def test_aborted_transaction_records_are_hidden_whatever_the_fetch_offset(broker, topic) -> None:
    bootstrap = broker.bootstrap
    create_topic(bootstrap, topic)
    _txn(bootstrap, topic, 77, 3, 0, [b"x%d" % i for i in range(5)])  # 0-4
    _txn(bootstrap, topic, 78, 0, 0, [b"y%d" % i for i in range(3)])  # 5-7
    _txn(bootstrap, topic, 77, 3, 5, [b"x5"])  # 8
    assert write_txn_markers(bootstrap, [(77, 3, False, 0, {topic: [0]})]) == {(77, topic, 0): 0}  # 9
    assert write_txn_markers(bootstrap, [(78, 0, True, 0, {topic: [0]})]) == {(78, topic, 0): 0}  # 10
    ys = [b"y0", b"y1", b"y2"]
    assert _values(bootstrap, topic, 3, COMMITTED) == ys
    # starting inside the aborted transaction: still told of it
    got = confluent_consume(bootstrap, topic, 3, start=3, timeout=20, extra_wait=1.5, **COMMITTED)
    assert [g.value for g in got] == ys
    got = confluent_consume(bootstrap, topic, 5, start=3, timeout=20, extra_wait=1.5, **UNCOMMITTED)
    assert [g.value for g in got] == [b"x3", b"x4", *ys, b"x5"]
    got = asyncio.run(aiokafka_consume(bootstrap, topic, 3, extra_wait=1.0, isolation_level="read_committed"))
    assert [g.value for g in got] == ys
    got = asyncio.run(aiokafka_consume(bootstrap, topic, 9, extra_wait=1.0, isolation_level="read_uncommitted"))
    assert [g.value for g in got] == [b"x%d" % i for i in range(5)] + ys + [b"x5"]


def test_markers_and_open_transactions_survive_a_leader_kill(cluster) -> None:
    """Three brokers, replication factor 3: the transaction state is in the replicated
    batches, so the successor of a killed leader has the same aborted index and the
    same open transaction, and takes the marker that ends it. Cost: about 25 s."""
    brokers = _start_three(cluster)
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("txnfail"))
    leader = wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=20, message="ISR 1,2,3")
    bootstrap = brokers[leader].bootstrap
    _txn(bootstrap, topic, 31, 0, 0, [b"aborted-1", b"aborted-2"])  # 0-1
    _plain(bootstrap, topic, b"plain-0")  # 2
    assert write_txn_markers(bootstrap, [(31, 0, False, 1, {topic: [0]})]) == {(31, topic, 0): 0}  # 3
    open_first = _txn(bootstrap, topic, 32, 0, 0, [b"open-1"])  # 4
    _plain(bootstrap, topic, b"plain-1")  # 5
    others = [i for i in brokers if i != leader]
    # every replica wrote the abort to its own .txnindex
    for i in brokers:
        wait_until(lambda i=i: list((brokers[i].data_dir / f"{topic}-0").glob("*.txnindex")), timeout=10,
                   message=f"the aborted index on broker {i}")
    brokers[leader].kill9()
    survivors = {i: brokers[i] for i in others}
    successor = wait_until(lambda: _fully_replicated(survivors, topic, others), timeout=30, interval=0.2,
                           message="a new leader")
    bootstrap = brokers[successor].bootstrap
    # the new leader's high watermark catches up with its follower's first fetch
    wait_until(lambda: _end_offset(bootstrap, topic, "read_uncommitted") == 6, timeout=20,
               message="the high watermark on the new leader")
    assert _end_offset(bootstrap, topic, "read_committed") == open_first
    assert _values(bootstrap, topic, 1, COMMITTED) == [b"plain-0"]
    assert write_txn_markers(bootstrap, [(32, 0, True, 2, {topic: [0]})]) == {(32, topic, 0): 0}
    assert _values(bootstrap, topic, 3, COMMITTED) == [b"plain-0", b"open-1", b"plain-1"]
