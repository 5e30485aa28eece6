"""KIP-848 online migration: a live classic group takes a consumer-protocol member and
becomes a consumer group, and goes back to classic when that member leaves, without
stopping (Kafka's GroupMetadataManager convertToConsumerGroup/convertToClassicGroup,
``group.consumer.migration.policy=bidirectional``), as confluent-kafka-python's
test_consumer_upgrade_downgrade exercises it. One broker; about 25 s.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupType

from .conftest import _dispose, _new_broker
from .kafka_helpers import (
    Rec,
    admin_client,
    assert_delivered,
    confluent_produce,
    consumer_conf,
    create_topic,
    unique_topic,
)

PARTITIONS = 2


@pytest.fixture(scope="module")
def mbroker():
    b = _new_broker({"group.initial.rebalance.delay.ms": 0, "group.consumer.heartbeat.interval.ms": 500}, "migration")
    yield b
    _dispose(b)


def _check(bootstrap: str, consumers: list[Consumer], group: str, topic: str, expected: ConsumerGroupType,
           sent: int) -> None:
    """Each consumer gets its share of the partitions, the group has the expected type
    and members, and the records produced now are all read by the group."""
    deadline = time.monotonic() + 60  # a rebalance after a restart, on a loaded machine
    while time.monotonic() < deadline:
        for c in consumers:
            c.poll(0.1)
        shares = [{tp.partition for tp in c.assignment()} for c in consumers]
        if all(len(s) == PARTITIONS // len(consumers) for s in shares) and len(set().union(*shares)) == PARTITIONS:
            break
    else:
        raise AssertionError(f"assignment not split: {[c.assignment() for c in consumers]}")
    admin = admin_client(bootstrap)
    described = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    assert described.type == expected
    assert len(described.members) == len(consumers)
    phase = f"{expected.name}-{len(consumers)}-".encode()
    wanted = {phase + b"%d" % i for i in range(sent)}
    for partition in range(PARTITIONS):
        records = [Rec(b"k", phase + b"%d" % i) for i in range(sent) if i % PARTITIONS == partition]
        assert_delivered(confluent_produce(bootstrap, topic, records, partition=partition), check_offsets=False)
    read: set[bytes] = set()
    deadline = time.monotonic() + 20
    while not wanted <= read and time.monotonic() < deadline:
        for c in consumers:
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                read.add(m.value())
    assert wanted <= read, sorted(wanted - read)


def _upgrade_and_downgrade(mbroker, prefix: str, records: int, restart: bool = False) -> None:
    """A classic member alone (CLASSIC), joined by a modern one (CONSUMER), optionally
    across a broker restart, then alone again (CLASSIC); each stage reads ``records``."""
    bootstrap = mbroker.bootstrap
    topic = unique_topic(prefix)
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    base = consumer_conf(bootstrap)
    group = base["group.id"]
    classic = Consumer({**base, "group.protocol": "classic", "heartbeat.interval.ms": 300,
                        "session.timeout.ms": 6000})
    modern = None
    try:
        classic.subscribe([topic])
        _check(bootstrap, [classic], group, topic, ConsumerGroupType.CLASSIC, records)
        modern = Consumer({**base, "group.protocol": "consumer"})
        modern.subscribe([topic])
        _check(bootstrap, [classic, modern], group, topic, ConsumerGroupType.CONSUMER, records)
        if restart:
            mbroker.restart()
            _check(bootstrap, [classic, modern], group, topic, ConsumerGroupType.CONSUMER, records)
        modern.close()
        modern = None
        _check(bootstrap, [classic], group, topic, ConsumerGroupType.CLASSIC, records)
    finally:
        if modern is not None:
            modern.close()
        classic.close()


def test_classic_group_upgrades_to_consumer_and_back(mbroker):
    _upgrade_and_downgrade(mbroker, "migrate", 10)


def test_a_migrated_group_survives_a_broker_restart(mbroker):
    """The classic members of a consumer group are written with their classic metadata
    (ConsumerGroupMemberMetadataValue's tagged ClassicMemberMetadata), so after a
    restart they carry on, and the group still downgrades when the modern member goes."""
    _upgrade_and_downgrade(mbroker, "migrate-restart", 4, restart=True)
