"""ListConfigResources (key 74, Kafka 4.1) with kafka-python's admin client, found by
kafka-python's own suite (test_list_config_resources). One broker for the module, then a
cluster of two on etcd; about 5 s."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient

from moldau.handlers.registry import codec_for
from moldau.protocol.messages import ALL_APIS

from .cluster_helpers import raw_request
from .kafka_helpers import admin_client, create_topic, unique_topic, wait_until

pytestmark = pytest.mark.timeout(60)

API = ALL_APIS[74]


@pytest.fixture(scope="module")
def admin(shared_broker):
    client = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap, request_timeout_ms=15000)
    yield client
    client.close()


def test_lists_brokers_and_topics_as_kafka(shared_broker, admin):
    topic = create_topic(shared_broker.bootstrap, unique_topic("lcr"), partitions=2)
    listed = admin.list_config_resources()
    assert "broker" in listed and "broker_logger" in listed, listed
    broker_ids = {str(b) for b in admin_client(shared_broker.bootstrap).list_topics(timeout=10).brokers}
    assert set(listed["broker"]) == broker_ids == set(listed["broker_logger"])
    names = listed.get("topic", [])
    assert topic in names
    assert names == sorted(names)
    only_topics = admin.list_config_resources(resource_types=["TOPIC"])
    assert set(only_topics) == {"topic"} and only_topics["topic"] == names


def test_versions_and_refusals_as_kafka(shared_broker):
    codec = codec_for(API)
    topic = unique_topic("lcr0")
    create_topic(shared_broker.bootstrap, topic)
    # v0 is KIP-714's ListClientMetricsResources: client metrics only (none here)
    v0 = raw_request(shared_broker, API, 0, codec.Request())
    assert (v0.error_code, list(v0.config_resources)) == (0, [])
    # a type outside TOPIC/BROKER/BROKER_LOGGER/CLIENT_METRICS/GROUP fails the request
    bad = raw_request(shared_broker, API, 1, codec.Request(resource_types=[2, 64]))
    assert (bad.error_code, list(bad.config_resources)) == (35, [])
    # rows follow Kafka's type order (BROKER before TOPIC), whatever the request's order
    both = raw_request(shared_broker, API, 1, codec.Request(resource_types=[2, 4]))
    kinds = [r.resource_type for r in both.config_resources]
    assert both.error_code == 0 and kinds == sorted(kinds, key=lambda k: k != 4)
    assert topic in [r.resource_name for r in both.config_resources if r.resource_type == 2]


def test_groups_with_configs_of_their_own_are_listed(shared_broker):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    group = unique_topic("lcr-group")
    entry = ConfigEntry("consumer.session.timeout.ms", "50000",
                        incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])
    client = admin_client(shared_broker.bootstrap)
    for future in client.incremental_alter_configs([resource]).values():
        future.result(timeout=15)
    codec = codec_for(API)
    groups = raw_request(shared_broker, API, 1, codec.Request(resource_types=[32]))
    assert groups.error_code == 0
    assert group in [r.resource_name for r in groups.config_resources if r.resource_type == 32]


def test_a_cluster_broker_lists_every_broker_and_topic(cluster):
    first, second = cluster(1), cluster(2)
    topic = create_topic(first.bootstrap, unique_topic("lcrc"))
    codec = codec_for(API)

    def listed() -> tuple[set[str], set[str]]:
        answer = raw_request(second, API, 1, codec.Request(resource_types=[4, 2]))
        rows = [(r.resource_type, r.resource_name) for r in answer.config_resources]
        return {n for t, n in rows if t == 4}, {n for t, n in rows if t == 2}

    wait_until(lambda: listed() == ({"1", "2"}, listed()[1]) and topic in listed()[1],
               timeout=20, message="broker 2 lists both brokers and broker 1's topic")
