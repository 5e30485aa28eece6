"""The console of one broker in a two-broker cluster reaches the other: it lists both
brokers, produces to partitions led by either (read back with confluent-kafka), browses
and searches a partition that has no replica on it (Fetch at the leader), lists
and describes groups coordinated by either, resets the offsets of an empty group
coordinated by the other broker (checked with confluent-kafka), creates topics through
either broker (one forwards to the controller), and shows the other broker's configs.

Cost: one etcd, two brokers, ~15 s.
"""

from __future__ import annotations

import re

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from .broker_process import free_port
from .kafka_helpers import (
    Rec,
    admin_client,
    assert_delivered,
    confluent_consume,
    confluent_produce,
    consumer_conf,
)
from .test_console_http import Browser

PARTITIONS = 4
GROUPS = [f"cluster-group-{i}" for i in range(12)]


def _leaders(bootstrap: str, topic: str) -> dict[int, int]:
    meta = admin_client(bootstrap).list_topics(topic=topic, timeout=10).topics[topic]
    return {p.id: p.leader for p in meta.partitions.values()}


def test_one_console_sees_and_acts_on_the_whole_cluster(cluster) -> None:
    ports = {i: free_port() for i in (1, 2)}
    brokers = {i: cluster(i, **{"moldau.http.listener": f"127.0.0.1:{ports[i]}"}) for i in (1, 2)}
    bootstrap = brokers[1].bootstrap
    topic = "console-cluster"
    admin = admin_client(bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)], request_timeout=15)[topic].result(timeout=20)
    leaders = _leaders(bootstrap, topic)
    assert set(leaders.values()) == {1, 2}, leaders  # the controller spreads the leaders
    for index in range(PARTITIONS):
        assert_delivered(confluent_produce(bootstrap, topic, [Rec(None, b"x") for _ in range(10)], partition=index))
    for group in GROUPS:
        consumer = Consumer(consumer_conf(bootstrap, **{"group.id": group}))
        try:
            consumer.commit(offsets=[TopicPartition(topic, i, 5) for i in range(PARTITIONS)], asynchronous=False)
        finally:
            consumer.close()

    console = Browser(f"http://127.0.0.1:{ports[1]}/console")
    overview = console.get("/")[1]
    assert "1 (this broker)" in overview and re.search(r"<td>2</td>", overview)

    # produce to every partition, wherever it is led, and read each back
    for index in range(PARTITIONS):
        token = console.csrf(f"/topics/{topic}")
        value = f"from-console-{index}"
        status, _, headers = console.post(f"/topics/{topic}/produce",
                                          {"csrf": token, "partition": str(index), "value": value})
        assert status == 303 and "produced=10" in headers["Location"], (index, leaders[index], status)
        got = confluent_consume(bootstrap, topic, 1, partition=index, start=10)
        assert got[0].value == value.encode()

    # browse and search a partition with no replica on this broker: read at its leader
    remote_partition = next(i for i, leader in leaders.items() if leader == 2)
    status, body, _ = console.get(f"/topics/{topic}/messages?partition={remote_partition}&offset=0&format=text")
    assert status == 200
    offsets = re.findall(r"<tr><td><span[^>]*>(\d+)</span>", body)
    assert offsets == [str(i) for i in range(11)]
    assert f"from-console-{remote_partition}" in body
    status, body, _ = console.get(f"/topics/{topic}/messages?partition={remote_partition}&offset=0"
                                  f"&q=from-console-{remote_partition}")
    assert re.findall(r"<tr><td><span[^>]*>(\d+)</span>", body) == ["10"]

    # every group, whichever broker coordinates it
    listed = console.get("/groups")[1]
    rows = re.findall(r">(cluster-group-\d+)</a></td><td>Empty</td><td>classic</td><td>(\d)</td>", listed)
    assert sorted(g for g, _ in rows) == sorted(GROUPS)
    coordinators = dict(rows)
    assert set(coordinators.values()) == {"1", "2"}, coordinators
    remote = next(g for g, node in coordinators.items() if node == "2")
    page = console.get(f"/groups/{remote}")[1]
    # 11 records in each partition (one from the console), 5 committed: lag 6, wherever led
    assert page.count('<span class="lag">6</span>') == PARTITIONS

    # reset the remote group's offsets to the earliest, preview then confirm
    fields = {"topic": topic, "strategy": "earliest", "value": ""}
    token = console.csrf(f"/groups/{remote}")
    status, preview, _ = console.post(f"/groups/{remote}/reset", {"csrf": token, "step": "preview", **fields})
    assert status == 200 and "Confirm reset" in preview
    status, done, _ = console.post(f"/groups/{remote}/reset", {"csrf": token, "step": "confirm", **fields})
    assert status == 200 and "reset." in done, done
    consumer = Consumer(consumer_conf(bootstrap, **{"group.id": remote}))
    try:
        committed = consumer.committed([TopicPartition(topic, i) for i in range(PARTITIONS)], timeout=10)
        assert [tp.offset for tp in committed] == [0] * PARTITIONS
    finally:
        consumer.close()

    # create a topic from each broker's console: one of them is not the controller and
    # forwards the CreateTopics to it
    for i in (1, 2):
        other = Browser(f"http://127.0.0.1:{ports[i]}/console")
        token = other.csrf("/topics")
        status, _, headers = other.post("/topics", {"csrf": token, "name": f"made-on-{i}", "partitions": "2"})
        assert status == 303 and headers["Location"] == f"/console/topics/made-on-{i}", status
        meta = admin.list_topics(topic=f"made-on-{i}", timeout=10).topics[f"made-on-{i}"]
        assert meta.error is None and len(meta.partitions) == 2

    # the other broker's configs, asked of it
    status, configs, _ = console.get("/broker?id=2")
    assert status == 200 and "num.partitions" in configs
