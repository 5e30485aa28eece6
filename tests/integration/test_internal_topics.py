"""Internal topics belong to the broker's coordinators, not to clients.

As in Kafka, a client's Produce to ``__consumer_offsets`` or ``__transaction_state``
is refused with INVALID_TOPIC_EXCEPTION (17, "Cannot append to internal topic"), and
so is DeleteRecords on them; the group coordinator keeps writing there by its own
path, so committed offsets are intact after a restart. And should a record there be
unreadable anyway (written on disk behind the broker's back), loading skips it and
keeps every other group's offsets.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from . import raw_kafka as raw
from .kafka_helpers import (
    admin_client,
    confluent_produce,
    create_topic,
    producer_conf,
    sample_records,
)

OFFSETS = "__consumer_offsets"
INVALID_TOPIC_EXCEPTION = 17


def _commit(bootstrap: str, group: str, topic: str, offset: int, metadata: str = "") -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset, metadata=metadata)], asynchronous=False)
    finally:
        c.close()


def _committed(bootstrap: str, group: str, topic: str) -> tuple[int, str]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        [tp] = c.committed([TopicPartition(topic, 0)], timeout=15)
    finally:
        c.close()
    return tp.offset, tp.metadata


def test_clients_cannot_write_internal_topics_and_offsets_survive(make_broker, topic):
    b = make_broker(offsets_topic_num_partitions=1)
    bs = b.bootstrap
    create_topic(bs, topic)
    confluent_produce(bs, topic, sample_records(10))
    _commit(bs, "kept", topic, 7, "seven")

    # Raw Produce, with a batch that would poison the offsets partition if stored.
    poison = raw.record_batch([b"\xff" * 8], int(time.time() * 1000), keys=[b"\x00\x01\x00"])
    for internal in (OFFSETS, "__transaction_state"):
        for acks in (1, -1):
            error, base = raw.raw_produce(bs, internal, 0, poison, acks=acks)
            assert (error, base) == (INVALID_TOPIC_EXCEPTION, -1), (internal, acks)

    # confluent-kafka: the delivery report carries the broker's refusal.
    reports: list[KafkaError | None] = []
    p = Producer(producer_conf(bs, retries=0))
    p.produce(OFFSETS, key=b"\x00\x01\x00", value=b"\xff", partition=0,
              on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(20) == 0
    assert [e.code() if e else None for e in reports] == [KafkaError.TOPIC_EXCEPTION]

    # DeleteRecords on an internal topic is refused the same way.
    admin = admin_client(bs)
    futures = admin.delete_records([TopicPartition(OFFSETS, 0, -1)], request_timeout=15)
    with pytest.raises(Exception) as raised:
        next(iter(futures.values())).result(timeout=20)
    assert raised.value.args[0].code() == KafkaError.TOPIC_EXCEPTION

    assert _committed(bs, "kept", topic) == (7, "seven")
    b.restart()
    assert _committed(bs, "kept", topic) == (7, "seven")
    _commit(bs, "kept", topic, 8)
    assert _committed(bs, "kept", topic) == (8, "")


# ------------------------------------------------------------ damage on disk
def _offset_key(group: str, topic: str, partition: int) -> bytes:
    return raw.i16(1) + raw.string(group) + raw.string(topic) + raw.i32(partition)


def _log_end(segment: Path) -> int:
    """The next offset after the last whole batch of a segment file."""
    data = segment.read_bytes()
    pos, end = 0, 0
    while pos + 12 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        if length <= 0 or pos + 12 + length > len(data):
            break
        last_delta = struct.unpack_from(">i", data, pos + 23)[0]
        end = base + last_delta + 1
        pos += 12 + length
    return end


def test_unreadable_offsets_records_are_skipped_at_load(make_broker, topic):
    b = make_broker(offsets_topic_num_partitions=1)
    bs = b.bootstrap
    create_topic(bs, topic)
    _commit(bs, "before", topic, 3, "three")
    b.stop()

    # Behind the broker's back: three batches with right CRCs and wrong contents.
    segment = sorted((b.data_dir / f"{OFFSETS}-0").glob("*.log"))[-1]
    next_offset = _log_end(segment)
    now = int(time.time() * 1000)
    bad = [
        # the header counts three records, there are two
        raw.record_batch([b"x", b"y"], now, count=3, keys=[b"a", b"b"]),
        # a well-formed key for group "before", and a value that is not an offset
        raw.record_batch([b"\x00\x03\xff"], now, keys=[_offset_key("before", topic, 0)]),
        # a key cut short
        raw.record_batch([b"\x00"], now, keys=[b"\x00\x01\x00\x09ab"]),
    ]
    with open(segment, "ab") as f:
        for batch in bad:
            f.write(struct.pack(">q", next_offset) + batch[8:])
            next_offset += 1 + struct.unpack_from(">i", batch, 23)[0]

    b.start()
    _commit(bs, "after", topic, 5, "five")  # written behind the damage
    mark = b.log_size()
    b.restart()
    assert _committed(bs, "before", topic) == (3, "three")
    assert _committed(bs, "after", topic) == (5, "five")
    log = b.log_text(mark)
    assert log.count("skipped what could not be read") == 1, log
    assert "1 batch(es)" in log and "2 record(s)" in log, log
    assert "Traceback" not in log


def test_deleting_the_offsets_topic_starts_groups_afresh(make_broker, topic):
    """Kafka guards DeleteTopics on internal topics only with ACLs: the topic goes, and
    with it the groups; the next group request creates it again and commits work."""
    b = make_broker(offsets_topic_num_partitions=2)
    bs = b.bootstrap
    create_topic(bs, topic)
    _commit(bs, "old", topic, 4)
    admin = admin_client(bs)
    admin.delete_topics([OFFSETS], request_timeout=15)[OFFSETS].result(timeout=20)
    assert _committed(bs, "old", topic)[0] == -1001  # OFFSET_INVALID: nothing committed
    _commit(bs, "new", topic, 6, "six")
    b.restart()
    assert _committed(bs, "new", topic) == (6, "six")
    assert _committed(bs, "old", topic)[0] == -1001


def test_metadata_auto_creation_of_internal_topics(make_broker):
    """A producer naming ``__consumer_offsets`` in Metadata creates it as Kafka's
    AutoTopicCreationManager does: with ``offsets.topic.num.partitions`` and compaction,
    not ``num.partitions``; ``__transaction_state`` likewise with
    ``transaction.state.log.num.partitions``."""
    b = make_broker(offsets_topic_num_partitions=5, num_partitions=1, auto_create_topics_enable=True,
                    transaction_state_log_num_partitions=3)
    p = Producer(producer_conf(b.bootstrap))
    try:
        offsets = p.list_topics(topic=OFFSETS, timeout=15).topics[OFFSETS]
        txn = p.list_topics(topic="__transaction_state", timeout=15).topics["__transaction_state"]
    finally:
        p.flush(5)
    assert offsets.error is None and len(offsets.partitions) == 5
    assert txn.error is None and len(txn.partitions) == 3
    admin = admin_client(b.bootstrap)
    resource = ConfigResource(ConfigResource.Type.TOPIC, OFFSETS)
    configs = admin.describe_configs([resource])[resource].result(timeout=15)
    assert configs["cleanup.policy"].value == "compact"
    resource = ConfigResource(ConfigResource.Type.TOPIC, "__transaction_state")
    configs = admin.describe_configs([resource])[resource].result(timeout=15)
    assert configs["cleanup.policy"].value == "compact"
