"""/metrics and /readyz in a two-broker cluster: the leader counts what producers wrote
and what its follower fetched, reports the partition under-replicated while the
follower is dead and the ISR expansion once it is back; /readyz wants registration.

Cost: one etcd, two brokers, one restart: ~15 s.
"""

from __future__ import annotations

import json

from confluent_kafka.admin import NewTopic

from .broker_process import free_port
from .kafka_helpers import (
    Rec,
    admin_client,
    assert_delivered,
    confluent_produce,
    unique_topic,
    wait_until,
)
from .test_observability import get, scrape, value


def _leader(bootstrap: str, topic: str) -> int:
    meta = admin_client(bootstrap).list_topics(topic=topic, timeout=10).topics[topic]
    return meta.partitions[0].leader


def test_replication_metrics_and_readiness_in_a_cluster(cluster):
    ports = {i: free_port() for i in (1, 2)}
    brokers = {i: cluster(i, **{"moldau.http.listener": f"127.0.0.1:{ports[i]}", "replica.lag.time.max.ms": 2000})
               for i in (1, 2)}
    http = {i: f"http://127.0.0.1:{ports[i]}" for i in (1, 2)}
    for i in (1, 2):
        status, body = get(http[i] + "/readyz")
        assert status == 200 and json.loads(body)["ready"], body
    topic = unique_topic("metrics-cluster")
    admin = admin_client(brokers[1].bootstrap)
    admin.create_topics([NewTopic(topic, 1, 2)], request_timeout=15)[topic].result(timeout=20)
    wait_until(lambda: _leader(brokers[1].bootstrap, topic) in (1, 2), timeout=15)
    assert_delivered(confluent_produce(brokers[1].bootstrap, topic, [Rec(None, b"r" * 200) for _ in range(100)],
                                       acks="all"))
    leader = _leader(brokers[1].bootstrap, topic)
    follower = 3 - leader
    samples = scrape(http[leader])
    assert value(samples, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 100
    assert value(samples, "kafka_server_brokertopicmetrics_replicationbytesout_total", topic=topic) >= 100 * 200
    assert value(samples, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert value(scrape(http[follower]), "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 0
    wait_until(lambda: value(scrape(http[follower]), "kafka_log_log_logendoffset", topic=topic, partition="0") == 100,
               timeout=10, message="the follower's log end offset reaches 100")
    controllers = sum(value(scrape(http[i]), "kafka_controller_kafkacontroller_activecontrollercount") for i in (1, 2))
    assert controllers == 1

    brokers[follower].kill9()
    wait_until(lambda: value(scrape(http[leader]), "kafka_cluster_partition_underreplicated",
                             topic=topic, partition="0") == 1, timeout=30, message="under-replicated once the follower died")
    expands = value(scrape(http[leader]), "kafka_server_replicamanager_isrexpands_total")
    brokers[follower].start()
    wait_until(lambda: value(scrape(http[leader]), "kafka_server_replicamanager_underreplicatedpartitions") == 0,
               timeout=30, message="fully replicated again")
    assert value(scrape(http[leader]), "kafka_server_replicamanager_isrexpands_total") > expands
    assert get(http[follower] + "/readyz")[0] == 200
