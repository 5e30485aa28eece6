"""KIP-848 consumer groups with confluent-kafka (librdkafka 2.16, ``group.protocol=
consumer``): three members split six partitions with the server's uniform assignor,
``range`` on request, a killed member's partitions move after the group's session
timeout, commits carry member epochs and resume, ConsumerGroupDescribe through the
admin client, and classic and KIP-848 groups side by side on one broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from .conftest import _dispose, _new_broker
from .kafka_helpers import Rec, confluent_produce, create_topic, unique_topic
from .test_groups_clients import ck_consumer, split_of

pytestmark = pytest.mark.timeout(90)

SESSION_MS = 2000
SETTINGS = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 500,
    "offsets.topic.num.partitions": 3,
    "group.consumer.heartbeat.interval.ms": 250,
    "group.consumer.session.timeout.ms": SESSION_MS,
}


@pytest.fixture(scope="module")
def gbroker():
    b = _new_broker(SETTINGS, "groups-848")
    yield b
    _dispose(b)


def new_consumer(bootstrap: str, group: str, **conf: object) -> Consumer:
    settings: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    settings.update(conf)
    return Consumer(settings)


def poll_until(consumers: list[Consumer], done, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            c.poll(0.05)
        if done():
            return True
    return False


def assignments(consumers: list[Consumer]) -> list[set[int]]:
    return [{tp.partition for tp in c.assignment()} for c in consumers]


def test_three_members_split_six_partitions(gbroker):
    topic = unique_topic("k848")
    create_topic(gbroker.bootstrap, topic, partitions=6)
    group = unique_topic("g848")
    consumers = [new_consumer(gbroker.bootstrap, group) for _ in range(3)]
    started = time.monotonic()
    try:
        for c in consumers:
            c.subscribe([topic])
        assert poll_until(consumers, lambda: split_of(assignments(consumers))), assignments(consumers)
        formed = time.monotonic() - started
        print(f"\nKIP-848 (confluent-kafka): 3-member group formed in {formed * 1000:.0f} ms")
        admin = AdminClient({"bootstrap.servers": gbroker.bootstrap})
        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "uniform"
        assert len(desc.members) == 3
        assert sorted(len(m.assignment.topic_partitions) for m in desc.members) == [2, 2, 2]
        listed = admin.list_consumer_groups(request_timeout=10).result(timeout=20)
        assert group in {g.group_id for g in listed.valid}
    finally:
        for c in consumers:
            c.close()


def test_range_assignor_on_request(gbroker):
    topic = unique_topic("k848r")
    create_topic(gbroker.bootstrap, topic, partitions=6)
    group = unique_topic("g848r")
    consumers = [new_consumer(gbroker.bootstrap, group, **{"group.remote.assignor": "range"}) for _ in range(2)]
    try:
        for c in consumers:
            c.subscribe([topic])
        assert poll_until(consumers, lambda: split_of(assignments(consumers))), assignments(consumers)
        # Range: contiguous blocks.
        assert sorted(sorted(a) for a in assignments(consumers)) == [[0, 1, 2], [3, 4, 5]]
    finally:
        for c in consumers:
            c.close()


MEMBER_SCRIPT = textwrap.dedent(
    """
    import sys
    from confluent_kafka import Consumer
    bootstrap, group, topic = sys.argv[1:4]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    while True:
        c.poll(0.05)
    """
)


def test_killed_member_fenced_after_session_timeout(gbroker):
    topic = unique_topic("k848kill")
    create_topic(gbroker.bootstrap, topic, partitions=6)
    group = unique_topic("g848kill")
    proc = subprocess.Popen([sys.executable, "-c", MEMBER_SCRIPT, gbroker.bootstrap, group, topic],
                            start_new_session=True)
    survivors = [new_consumer(gbroker.bootstrap, group) for _ in range(2)]
    try:
        for c in survivors:
            c.subscribe([topic])
        assert poll_until(
            survivors, lambda: all(len(a) == 2 for a in assignments(survivors)) and len(set().union(*assignments(survivors))) == 4
        ), assignments(survivors)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        assert poll_until(survivors, lambda: split_of(assignments(survivors))), assignments(survivors)
        took = time.monotonic() - killed
        print(f"\nKIP-848 reassignment after a killed member: {took * 1000:.0f} ms (session {SESSION_MS} ms)")
        assert SESSION_MS / 1000 * 0.8 <= took < SESSION_MS / 1000 + 8
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for c in survivors:
            c.close()


def test_commits_resume_and_coexist_with_classic(gbroker):
    topic = unique_topic("k848c")
    create_topic(gbroker.bootstrap, topic, partitions=1)
    confluent_produce(gbroker.bootstrap, topic, [Rec(None, b"%d" % i) for i in range(10)])
    group = unique_topic("g848c")
    classic_group = unique_topic("gclassic")
    c = new_consumer(gbroker.bootstrap, group)
    classic = ck_consumer(gbroker.bootstrap, classic_group)
    try:
        c.subscribe([topic])
        classic.subscribe([topic])
        got: list[bytes] = []
        other: list[bytes] = []
        deadline = time.monotonic() + 30
        while (len(got) < 4 or len(other) < 10) and time.monotonic() < deadline:
            m = c.poll(0.05)
            if m is not None and not m.error() and len(got) < 4:
                got.append(m.value())
                c.commit(message=m, asynchronous=False)  # OffsetCommit v9 with the member epoch
            m = classic.poll(0.05)
            if m is not None and not m.error():
                other.append(m.value())
        assert got == [b"0", b"1", b"2", b"3"]
        assert other == [b"%d" % i for i in range(10)]
    finally:
        c.close()
        classic.close()
    admin = AdminClient({"bootstrap.servers": gbroker.bootstrap})
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=20)
    assert [(tp.partition, tp.offset) for tp in offsets.topic_partitions] == [(0, 4)]
    c = new_consumer(gbroker.bootstrap, group)
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 20
        first = None
        while first is None and time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and not m.error():
                first = m.value()
        assert first == b"4"
        assert c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 4
    finally:
        c.close()
    listed = admin.list_consumer_groups(request_timeout=10).result(timeout=20)
    ids = {g.group_id for g in listed.valid}
    assert {group, classic_group} <= ids


def test_members_carry_on_after_broker_kill9(make_broker):
    """After a kill -9 the group's KIP-848 state and commits are replayed from
    ``__consumer_offsets``: the member carries on and reads nothing twice."""
    b = make_broker(**SETTINGS)
    topic = unique_topic("k848-restart")
    create_topic(b.bootstrap, topic, partitions=2)
    confluent_produce(b.bootstrap, topic, [Rec(None, b"a%d" % i) for i in range(5)], partition=0)
    confluent_produce(b.bootstrap, topic, [Rec(None, b"b%d" % i) for i in range(5)], partition=1)
    group = unique_topic("g848-restart")
    c = new_consumer(b.bootstrap, group)
    c.subscribe([topic])
    try:
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            m = c.poll(0.05)
            if m is not None and not m.error():
                got.append(m.value())
                c.commit(message=m, asynchronous=False)
        assert sorted(got) == sorted([b"a%d" % i for i in range(5)] + [b"b%d" % i for i in range(5)])
        b.kill9()
        b.start()
        confluent_produce(b.bootstrap, topic, [Rec(None, b"late")], partition=0)
        late: list[bytes] = []
        deadline = time.monotonic() + 40
        while not late and time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and not m.error():
                late.append(m.value())
        assert late == [b"late"]  # nothing re-read: the commits survived
    finally:
        c.close()


def test_regex_subscription(gbroker):
    prefix = unique_topic("rx")
    for suffix in ("a", "b"):
        create_topic(gbroker.bootstrap, f"{prefix}-{suffix}", partitions=2)
    create_topic(gbroker.bootstrap, f"other-{prefix}", partitions=2)
    group = unique_topic("g848rx")
    c = new_consumer(gbroker.bootstrap, group)
    try:
        c.subscribe([f"^{prefix}-.*"])
        assert poll_until([c], lambda: len(c.assignment()) == 4), c.assignment()
        assert {tp.topic for tp in c.assignment()} == {f"{prefix}-a", f"{prefix}-b"}
    finally:
        c.close()
