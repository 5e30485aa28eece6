"""Answers the clients' own test suites expect from a Kafka 4.x broker (issue 15, item 2).

Each test reproduces a failure seen in librdkafka's or confluent-kafka-python's suites
with a real client. One broker per module, plus one restarted broker; about 25 s.
"""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AclOperation, AlterConfigOpType, ConfigEntry, ConfigResource

from .kafka_helpers import (
    Rec,
    admin_client,
    assert_delivered,
    confluent_consume,
    confluent_produce,
    consumer_conf,
    create_topic,
    unique_topic,
    wait_until,
)


# ---------------------------------------------------------------- OffsetCommit
def test_commit_to_missing_topic_or_partition_is_refused(shared_broker, topic):
    """KafkaApis.handleOffsetCommitRequest: UNKNOWN_TOPIC_OR_PARTITION per partition
    for a topic that does not exist and for a partition beyond the topic's count;
    the partitions that exist are stored (librdkafka test 0030)."""
    bootstrap = shared_broker.bootstrap
    create_topic(bootstrap, topic, partitions=2)
    missing = unique_topic("missing")
    consumer = Consumer(consumer_conf(bootstrap))
    try:
        offsets = [TopicPartition(topic, 0, 5), TopicPartition(topic, 7, 1), TopicPartition(missing, 0, 3)]
        with pytest.raises(KafkaException):
            consumer.commit(offsets=offsets, asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(missing, 0)], timeout=10)
        assert committed[0].offset == 5
        assert committed[1].offset < 0  # nothing stored for the missing topic
    finally:
        consumer.close()


def test_alter_group_offsets_of_missing_topic(shared_broker, topic):
    """AdminClient.alter_consumer_group_offsets reports the per-partition error."""
    bootstrap = shared_broker.bootstrap
    admin = admin_client(bootstrap)
    group = unique_topic("g")
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(unique_topic("missing"), 0, 3)])
    future = admin.alter_consumer_group_offsets([request], request_timeout=10)[group]
    try:
        result = future.result(timeout=15)
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    else:
        assert [tp.error.code() for tp in result.topic_partitions] == [KafkaError.UNKNOWN_TOPIC_OR_PART]


# ---------------------------------------------------------------- ListGroups
def test_empty_classic_group_keeps_its_protocol_type(shared_broker, topic):
    """ClassicGroup.initNextGeneration keeps protocolType when the last member leaves,
    so ListGroups still says "consumer" and clients do not call the group simple
    (librdkafka test 0081)."""
    bootstrap = shared_broker.bootstrap
    create_topic(bootstrap, topic)
    conf = consumer_conf(bootstrap)
    group = conf["group.id"]
    consumer = Consumer(conf)
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment()
    finally:
        consumer.close()
    admin = admin_client(bootstrap)

    def listing():
        result = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
        return next((g for g in result.valid if g.group_id == group), None)

    found = wait_until(lambda: (g := listing()) is not None and g.state == ConsumerGroupState.EMPTY and g,
                       timeout=15, message="group listed as Empty")
    assert found.is_simple_consumer_group is False


# ---------------------------------------------------------------- authorized operations
def test_authorized_operations_without_authorizer(shared_broker, topic):
    """With no authorizer, Kafka reports every operation a resource supports
    (AclEntry.supportedOperations) when asked (librdkafka test 0081)."""
    bootstrap = shared_broker.bootstrap
    create_topic(bootstrap, topic)
    admin = admin_client(bootstrap)
    described = admin.describe_topics(TopicCollection([topic]), request_timeout=10,
                                      include_authorized_operations=True)[topic].result(timeout=10)
    assert set(described.authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE, AclOperation.DELETE,
        AclOperation.ALTER, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
    }
    cluster = admin.describe_cluster(request_timeout=10, include_authorized_operations=True).result(timeout=10)
    assert set(cluster.authorized_operations) == {
        AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
        AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER, AclOperation.DESCRIBE,
    }
    conf = consumer_conf(bootstrap)
    group = conf["group.id"]
    consumer = Consumer(conf)
    try:
        consumer.subscribe([topic])
        wait_until(lambda: consumer.poll(0.2) is not None or bool(consumer.assignment()), 20,
                   message="the group formed")
        result = admin.describe_consumer_groups([group], request_timeout=10,
                                                include_authorized_operations=True)[group].result(timeout=10)
        assert set(result.authorized_operations) == {
            AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE,
            AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
        }
    finally:
        consumer.close()


# ---------------------------------------------------------------- configs
def _alter(admin, resource: ConfigResource) -> None:
    admin.incremental_alter_configs([resource], request_timeout=10)[resource].result(timeout=15)


def _refused_with(admin, resource: ConfigResource) -> int:
    with pytest.raises(KafkaException) as raised:
        _alter(admin, resource)
    return raised.value.args[0].code()


def _topic_configs(admin, topic: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return {k: e.value for k, e in admin.describe_configs([resource], request_timeout=10)[resource].result(15).items()}


def test_empty_cleanup_policy_is_kept_and_the_broker_restarts(broker, topic):
    """Kafka takes an empty cleanup.policy (ValidList.in allows an empty list; 4.2:
    neither retention nor compaction). SUBTRACT of the only value stores it, CreateTopics
    takes it, a bad value is refused before anything is stored, and the broker starts
    again afterwards (it used to die on the stored '')."""
    bootstrap = broker.bootstrap
    admin = admin_client(bootstrap)
    create_topic(bootstrap, topic)
    subtract = ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)
    _alter(admin, ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[subtract]))
    assert _topic_configs(admin, topic)["cleanup.policy"] == ""
    created = create_topic(bootstrap, unique_topic("empty-policy"), config={"cleanup.policy": ""})
    bogus = ConfigEntry("cleanup.policy", "delete,remove", incremental_operation=AlterConfigOpType.SET)
    code = _refused_with(admin, ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[bogus]))
    assert code == KafkaError.INVALID_CONFIG
    broker.restart()
    admin = admin_client(bootstrap)
    assert _topic_configs(admin, topic)["cleanup.policy"] == ""
    assert _topic_configs(admin, created)["cleanup.policy"] == ""
    assert_delivered(confluent_produce(bootstrap, topic, [Rec(b"k", b"v")]))
    assert [g.value for g in confluent_consume(bootstrap, topic, 1)] == [b"v"]


def test_a_stored_config_that_no_longer_validates_does_not_stop_a_start(broker, topic):
    """A value in the metadata store that today's rules refuse (written by hand, or by
    an older version) is logged and replaced by its default; the broker starts."""
    bootstrap = broker.bootstrap
    create_topic(bootstrap, topic, config={"retention.ms": "3600000"})
    broker.stop()
    path = broker.data_dir / "cluster-metadata.json"
    image = json.loads(path.read_text())
    image["topics"][topic]["configs"]["retention.ms"] = "soon"
    image.setdefault("broker_configs", {})[""] = {"log.retention.ms": "later", "log.segment.bytes": "1048576"}
    path.write_text(json.dumps(image))
    broker.start()
    admin = admin_client(bootstrap)
    assert _topic_configs(admin, topic)["retention.ms"] == "604800000"
    assert _topic_configs(admin, topic)["segment.bytes"] == "1048576"  # the valid neighbour still applies
    assert "ignoring stored config retention.ms='soon'" in broker.log_text()
    assert_delivered(confluent_produce(bootstrap, topic, [Rec(b"k", b"v")]))


def test_broker_configs_follow_kafkas_dynamic_config_rules(shared_broker, topic):
    """DynamicBrokerConfig.validateConfigs: keys the broker does not know are kept
    (kafkajs sets cleanup.policy, librdkafka 0081 a Kerberos setting per broker); a
    per-broker key at the cluster-wide scope, a key that cannot change at run time and
    a value of the wrong type are INVALID_REQUEST."""
    bootstrap = shared_broker.bootstrap
    admin = admin_client(bootstrap)
    node = str(admin.describe_cluster(request_timeout=10).result(timeout=15).nodes[0].id)

    def broker_resource(name: str, key: str, value: str) -> ConfigResource:
        entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
        return ConfigResource(ConfigResource.Type.BROKER, name, incremental_configs=[entry])

    _alter(admin, broker_resource(node, "sasl.kerberos.min.time.before.relogin", "58000"))
    _alter(admin, broker_resource(node, "cleanup.policy", "compact"))
    legacy = ConfigResource(ConfigResource.Type.BROKER, node, set_config={"cleanup.policy": "compact"})
    admin.alter_configs([legacy], request_timeout=10)[legacy].result(timeout=15)
    invalid = KafkaError.INVALID_REQUEST
    assert _refused_with(admin, broker_resource(node, "log.dirs", "/tmp/x")) == invalid
    assert _refused_with(admin, broker_resource(node, "log.retention.ms", "soon")) == invalid
    create_topic(bootstrap, topic)
    assert _topic_configs(admin, topic)["cleanup.policy"] == "delete"  # a broker key of that name has no effect


# ---------------------------------------------------------------- KIP-848 standalone commits
def test_unsubscribed_kip848_consumer_commits_standalone(shared_broker, topic):
    """An unsubscribed librdkafka consumer with group.protocol=consumer commits with
    member epoch -1 and a member id of its own; Kafka's ConsumerGroup /
    OffsetMetadataManager.validateOffsetCommit take it as a standalone commit while the
    group has no members (confluent-kafka-python's test_incremental_assign)."""
    bootstrap = shared_broker.bootstrap
    create_topic(bootstrap, topic, partitions=2)
    assert_delivered(confluent_produce(bootstrap, topic, [Rec(b"k", b"v%d" % i) for i in range(3)]))
    consumer = Consumer(consumer_conf(bootstrap, **{"group.protocol": "consumer"}))
    try:
        consumer.incremental_assign([TopicPartition(topic, 0, 0)])
        got = None
        deadline = time.monotonic() + 15
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got = msg
        assert got is not None
        consumer.commit(message=got, asynchronous=False)
        consumer.commit(offsets=[TopicPartition(topic, 1, 7)], asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [(tp.offset, tp.error) for tp in committed] == [(got.offset() + 1, None), (7, None)]
    finally:
        consumer.close()
