"""``__consumer_offsets`` is compacted like any compacted topic: repeated commits of one
partition shrink to the latest, which survives a restart."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition
from tests.integration.kafka_helpers import (
    assert_delivered,
    confluent_produce,
    create_topic,
    sample_records,
    wait_until,
)

OFFSETS = "__consumer_offsets"


def _count_records(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "counter",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(OFFSETS, 0, 0)])
        count = 0
        while True:
            msg = consumer.poll(5)
            assert msg is not None, "no end of partition in time"
            if msg.error():
                return count
            count += 1
    finally:
        consumer.close()


def test_repeated_commits_compact_to_the_latest(make_broker, topic):
    b = make_broker(**{
        "offsets.topic.num.partitions": 1,
        "offsets.topic.segment.bytes": 4096,
        "log.cleaner.backoff.ms": 100,
        "log.cleaner.min.cleanable.ratio": 0.01,
    })
    bs = b.bootstrap
    create_topic(bs, topic)
    assert_delivered(confluent_produce(bs, topic, sample_records(10, seed=3)))
    consumer = Consumer({"bootstrap.servers": bs, "group.id": "compact-me", "enable.auto.commit": False})
    try:
        for offset in range(1, 301):
            consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()
    assert len(list((b.data_dir / f"{OFFSETS}-0").glob("*.log"))) > 2
    wait_until(lambda: _count_records(bs) < 100, timeout=30, interval=1.0,
               message="__consumer_offsets compacted")
    b.restart()
    check = Consumer({"bootstrap.servers": bs, "group.id": "compact-me", "enable.auto.commit": False})
    try:
        [committed] = check.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        check.close()
    assert committed.offset == 300
