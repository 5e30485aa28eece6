"""Topic and cluster administration with confluent-kafka's and kafka-python's admin
clients: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
DescribeCluster, and auto topic creation through Metadata."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource, NewPartitions, NewTopic
from confluent_kafka.admin import ResourceType as CResourceType
from kafka import errors as kerrors
from kafka.admin import ConfigResource as KConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient

from .kafka_helpers import (
    INVALID_CONFIG,
    INVALID_PARTITIONS,
    INVALID_REPLICATION_FACTOR,
    INVALID_TOPIC_EXCEPTION,
    TOPIC_ALREADY_EXISTS,
    UNKNOWN_TOPIC_OR_PARTITION,
    Rec,
    admin_client,
    assert_delivered,
    confluent_consume,
    confluent_produce,
    consumer_conf,
    create_topic,
    producer_conf,
    topic_ready,
    unique_topic,
    wait_for_topic,
    wait_until,
    watermarks,
)

pytestmark = pytest.mark.timeout(60)

TOPIC_DEFAULTS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "max.message.bytes": "1048588",
    "segment.bytes": "1073741824",
    "min.insync.replicas": "1",
    "compression.type": "producer",
    "message.timestamp.type": "CreateTime",
}

BROKER_DEFAULTS = {
    "num.partitions": "1",
    "message.max.bytes": "1048588",
    "auto.create.topics.enable": "true",
    "log.retention.hours": "168",
    "log.segment.bytes": "1073741824",
    "log.cleanup.policy": "delete",
    "default.replication.factor": "1",
}


def error_code(future, timeout: float = 15.0) -> int:
    """0 if the future succeeds, else the Kafka error code it failed with."""
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        return exc.args[0].code()
    return 0


def source_of(entry) -> int:
    return getattr(entry.source, "value", entry.source)


def describe_topic(bs: str, topic: str) -> dict:
    res = ConfigResource(CResourceType.TOPIC, topic)
    admin = admin_client(bs)  # keep the handle alive until the future resolves
    return admin.describe_configs([res], request_timeout=10)[res].result(timeout=15)


def broker_id(bs: str) -> int:
    md = admin_client(bs).list_topics(timeout=10)
    [bid] = list(md.brokers)
    return bid


def kp_admin(bs: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=15000)


# ----------------------------------------------------------- CreateTopics
def test_create_topic_with_config_and_describe_it(shared_broker, topic):
    bs = shared_broker.bootstrap
    admin = admin_client(bs)
    fs = admin.create_topics([NewTopic(topic, 3, 1, config={"retention.ms": "3600000",
                                                            "cleanup.policy": "compact"})],
                             request_timeout=15)
    assert error_code(fs[topic]) == 0
    wait_for_topic(bs, topic, partitions=3)
    configs = describe_topic(bs, topic)
    assert configs["retention.ms"].value == "3600000"
    assert source_of(configs["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "compact"
    assert configs["segment.bytes"].value == TOPIC_DEFAULTS["segment.bytes"]
    assert source_of(configs["segment.bytes"]) == ConfigSource.DEFAULT_CONFIG.value


def test_create_topic_validate_only_creates_nothing(shared_broker, topic):
    bs = shared_broker.bootstrap
    admin = admin_client(bs)
    fs = admin.create_topics([NewTopic(topic, 2, 1)], validate_only=True, request_timeout=15)
    assert error_code(fs[topic]) == 0
    assert topic not in admin.list_topics(timeout=10).topics
    # validate_only still validates
    fs = admin.create_topics([NewTopic(topic, 2, 1, config={"retention.ms": "soon"})],
                             validate_only=True, request_timeout=15)
    assert error_code(fs[topic]) == INVALID_CONFIG
    # and the real thing works afterwards
    create_topic(bs, topic, partitions=2)


@pytest.mark.parametrize("config", [
    {"retention.ms": "not-a-number"},
    {"cleanup.policy": "bogus"},
    {"no.such.config": "1"},
    {"min.insync.replicas": "0"},
    {"message.timestamp.type": "Whenever"},
])
def test_create_topic_invalid_config(shared_broker, topic, config):
    bs = shared_broker.bootstrap
    admin = admin_client(bs)
    fs = admin.create_topics([NewTopic(topic, 1, 1, config=config)], request_timeout=15)
    assert error_code(fs[topic]) == INVALID_CONFIG
    assert topic not in admin.list_topics(timeout=10).topics


def test_create_topic_errors(shared_broker, topic):
    bs = shared_broker.bootstrap
    admin = admin_client(bs)
    create_topic(bs, topic)
    assert error_code(admin.create_topics([NewTopic(topic, 1, 1)])[topic]) == TOPIC_ALREADY_EXISTS
    t2 = unique_topic("zero-parts")
    assert error_code(admin.create_topics([NewTopic(t2, 0, 1)])[t2]) == INVALID_PARTITIONS
    t3 = unique_topic("rf3")
    assert error_code(admin.create_topics([NewTopic(t3, 1, 3)])[t3]) == INVALID_REPLICATION_FACTOR
    for bad in ("bad/name", "a" * 250, "..", "sp ace"):
        assert error_code(admin.create_topics([NewTopic(bad, 1, 1)])[bad]) == \
            INVALID_TOPIC_EXCEPTION, bad
    names = set(admin.list_topics(timeout=10).topics)
    assert not names & {t2, t3, "bad/name", "..", "sp ace"}


def test_several_topics_in_one_request_fail_independently(shared_broker):
    bs = shared_broker.bootstrap
    good, bad = unique_topic("good"), unique_topic("bad")
    admin = admin_client(bs)
    fs = admin.create_topics(
        [NewTopic(good, 2, 1), NewTopic(bad, 1, 1, config={"retention.ms": "x"})],
        request_timeout=15)
    assert error_code(fs[good]) == 0
    assert error_code(fs[bad]) == INVALID_CONFIG
    wait_for_topic(bs, good, partitions=2)


def test_create_topic_with_broker_default_partitions(make_broker):
    b = make_broker(**{"num.partitions": 3})
    topic = unique_topic("defaults")
    admin = admin_client(b.bootstrap)
    fs = admin.create_topics([NewTopic(topic)], request_timeout=15)
    assert error_code(fs[topic]) == 0
    wait_for_topic(b.bootstrap, topic, partitions=3)


# ----------------------------------------------------------- DeleteTopics
def test_delete_topic(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=2)
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"v", (), None)] * 3))
    admin = admin_client(bs)
    assert error_code(admin.delete_topics([topic], request_timeout=15)[topic]) == 0
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 10,
               message="deleted topic to leave metadata")
    assert error_code(admin.delete_topics([topic], request_timeout=15)[topic]) == \
        UNKNOWN_TOPIC_OR_PARTITION
    create_topic(bs, topic, partitions=1)
    assert watermarks(bs, topic) == (0, 0)


# ------------------------------------------------------- CreatePartitions
def test_create_partitions_then_produce_to_new_one(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=1)
    admin = admin_client(bs)
    assert error_code(admin.create_partitions([NewPartitions(topic, 3)],
                                              request_timeout=15)[topic]) == 0
    wait_for_topic(bs, topic, partitions=3)
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"in p2", (), None)], partition=2))
    got = confluent_consume(bs, topic, 1, partition=2)
    assert [(g.offset, g.value) for g in got] == [(0, b"in p2")]
    assert watermarks(bs, topic, 1) == (0, 0)

    for count in (2, 3):  # fewer or the same is refused
        assert error_code(admin.create_partitions([NewPartitions(topic, count)],
                                                  request_timeout=15)[topic]) == INVALID_PARTITIONS
    f = admin.create_partitions([NewPartitions(topic, 5)], validate_only=True,
                                request_timeout=15)[topic]
    assert error_code(f) == 0
    assert topic_ready(admin, topic, partitions=3)
    missing = unique_topic("missing")
    assert error_code(admin.create_partitions([NewPartitions(missing, 2)],
                                              request_timeout=15)[missing]) == \
        UNKNOWN_TOPIC_OR_PARTITION


# -------------------------------------------------------- DescribeConfigs
def test_describe_topic_config_defaults(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    configs = describe_topic(bs, topic)
    for key, value in TOPIC_DEFAULTS.items():
        assert key in configs, f"{key} missing from topic configs"
        assert configs[key].value == value, (key, configs[key].value)
        assert source_of(configs[key]) == ConfigSource.DEFAULT_CONFIG.value, key
        assert not configs[key].is_read_only, key


def test_describe_topic_config_static_broker_override(make_broker):
    b = make_broker(**{"log.retention.ms": 123456, "log.cleanup.policy": "compact"})
    topic = create_topic(b.bootstrap, unique_topic("static"))
    configs = describe_topic(b.bootstrap, topic)
    assert configs["retention.ms"].value == "123456"
    assert source_of(configs["retention.ms"]) == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["cleanup.policy"].value == "compact"


def test_describe_broker_configs(make_broker):
    b = make_broker(**{"num.partitions": 4})
    bid = broker_id(b.bootstrap)
    res = ConfigResource(CResourceType.BROKER, str(bid))
    admin = admin_client(b.bootstrap)
    configs = admin.describe_configs([res], request_timeout=10)[res].result(timeout=15)
    for key, value in BROKER_DEFAULTS.items():
        assert key in configs, f"{key} missing from broker configs"
        if key != "num.partitions":
            assert configs[key].value == value, (key, configs[key].value)
    assert configs["num.partitions"].value == "4"
    assert source_of(configs["num.partitions"]) == ConfigSource.STATIC_BROKER_CONFIG.value
    assert source_of(configs["log.segment.bytes"]) == ConfigSource.DEFAULT_CONFIG.value


def test_describe_configs_of_unknown_topic(shared_broker):
    res = ConfigResource(CResourceType.TOPIC, unique_topic("nope"))
    admin = admin_client(shared_broker.bootstrap)
    f = admin.describe_configs([res], request_timeout=10)[res]
    assert error_code(f) == UNKNOWN_TOPIC_OR_PARTITION


# -------------------------------------------------------- DescribeCluster
def test_describe_cluster_confluent(shared_broker):
    admin = admin_client(shared_broker.bootstrap)
    desc = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert isinstance(desc.cluster_id, str) and desc.cluster_id
    assert len(desc.nodes) == 1
    [node] = desc.nodes
    assert (node.host, node.port) == ("127.0.0.1", shared_broker.port)
    assert desc.controller is not None and desc.controller.id == node.id


# ---------------------------------------------------------- kafka-python
def test_kafka_python_admin_round(shared_broker):
    bs = shared_broker.bootstrap
    admin = kp_admin(bs)
    topic = unique_topic("kp-admin")
    try:
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1,
                                     "configs": {"retention.ms": "86400000"}}},
                            validate_only=True)
        assert topic not in admin.list_topics()
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1,
                                     "configs": {"retention.ms": "86400000"}}})
        wait_for_topic(bs, topic, partitions=2)
        with pytest.raises(kerrors.TopicAlreadyExistsError):
            admin.create_topics({topic: {"num_partitions": 1}})

        described = admin.describe_configs(
            [KConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        cfg = described["topic"][topic]
        assert cfg["retention.ms"]["value"] == "86400000"
        assert cfg["cleanup.policy"]["value"] == "delete"

        cluster = admin.describe_cluster()
        assert cluster["cluster_id"]
        [b] = cluster["brokers"]
        assert (b["host"], b["port"]) == ("127.0.0.1", shared_broker.port)
        assert cluster["controller_id"] == b["broker_id"]

        described = admin.describe_configs(
            [KConfigResource(ConfigResourceType.BROKER, str(b["broker_id"]))],
            config_filter="all")
        assert described["broker"][str(b["broker_id"])]["num.partitions"]["value"] == "1"

        admin.create_partitions({topic: 4})
        wait_for_topic(bs, topic, partitions=4)
        with pytest.raises(kerrors.InvalidPartitionsError):
            admin.create_partitions({topic: 2})

        admin.delete_topics([topic])
        wait_until(lambda: topic not in admin.list_topics(), 10, message="topic deleted")
        with pytest.raises(kerrors.UnknownTopicOrPartitionError):
            admin.delete_topics([topic])
    finally:
        admin.close()


# ------------------------------------------------------- auto creation
def test_auto_create_on(make_broker):
    b = make_broker(**{"auto.create.topics.enable": "true", "num.partitions": 3})
    bs = b.bootstrap
    # a producer's metadata request may create topics
    topic = unique_topic("auto-on")
    producers: list[Producer] = []

    def created() -> bool:
        # a fresh producer per attempt: librdkafka may keep a first "unknown topic"
        # answer for its metadata cache's lifetime (seen once in a loaded full run)
        producers.append(Producer(producer_conf(bs)))
        t = producers[-1].list_topics(topic=topic, timeout=5).topics.get(topic)
        return t is not None and t.error is None and len(t.partitions) == 3

    wait_until(created, 20, interval=1.0, message="auto-created topic with 3 partitions")
    wait_for_topic(bs, topic, partitions=3)
    # and so does producing to an unknown topic
    topic2 = unique_topic("auto-produce")
    assert_delivered(confluent_produce(bs, topic2, [Rec(b"k", b"v", (), None)], partition=2))
    assert [g.value for g in confluent_consume(bs, topic2, 1, partition=2)] == [b"v"]
    wait_for_topic(bs, topic2, partitions=3)


def test_consumer_metadata_does_not_auto_create(make_broker):
    """librdkafka consumers send allow_auto_topic_creation=false; Kafka honours it."""
    b = make_broker(**{"auto.create.topics.enable": "true"})
    topic = unique_topic("consumer-no-create")
    c = Consumer(consumer_conf(b.bootstrap))
    try:
        t = c.list_topics(topic=topic, timeout=10).topics[topic]
        assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    finally:
        c.close()
    assert topic not in admin_client(b.bootstrap).list_topics(timeout=10).topics


def test_auto_create_off(make_broker):
    b = make_broker(**{"auto.create.topics.enable": "false"})
    bs = b.bootstrap
    topic = unique_topic("auto-off")
    p = Producer(producer_conf(bs, **{"message.timeout.ms": 3000}))
    md = p.list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    errors = []
    p.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors and errors[0] is not None, "produce to a missing topic succeeded"
    assert topic not in admin_client(bs).list_topics(timeout=10).topics
    # explicit creation still works
    create_topic(bs, topic)
    assert_delivered(confluent_produce(bs, topic, [Rec(None, b"now", (), None)]))


def test_manual_replica_assignment(shared_broker, topic):
    bs = shared_broker.bootstrap
    bid = broker_id(bs)
    admin = admin_client(bs)
    fs = admin.create_topics([NewTopic(topic, 2, replica_assignment=[[bid], [bid]])],
                             request_timeout=15)
    assert error_code(fs[topic]) == 0
    wait_for_topic(bs, topic, partitions=2)
    bad = unique_topic("bad-assign")
    fs = admin.create_topics([NewTopic(bad, 1, replica_assignment=[[bid + 100]])],
                             request_timeout=15)
    assert error_code(fs[bad]) != 0, "assignment to a broker that does not exist accepted"


def test_longest_topic_name_lives_and_dies(shared_broker):
    """249 characters is Kafka's limit; the partition folder and its deletion must fit
    the file system's 255-byte names."""
    bs = shared_broker.bootstrap
    topic = ("long." + unique_topic("x") + "_" * 249)[:249]
    create_topic(bs, topic, partitions=11)
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"v", (), None)], partition=10))
    admin = admin_client(bs)
    assert error_code(admin.delete_topics([topic], request_timeout=15)[topic]) == 0
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 10,
               message="long topic deleted")
    create_topic(bs, topic, partitions=11)
    assert watermarks(bs, topic, 10) == (0, 0)


def test_delete_and_recreate_quickly(shared_broker, topic):
    bs = shared_broker.bootstrap
    admin = admin_client(bs)
    for i in range(8):
        create_topic(bs, topic, partitions=2)
        assert watermarks(bs, topic, 1) == (0, 0), f"round {i}: old data visible"
        assert_delivered(confluent_produce(bs, topic, [Rec(None, b"r%d" % i, (), None)] * 3,
                                           partition=1))
        assert error_code(admin.delete_topics([topic], request_timeout=15)[topic]) == 0
        wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 10,
                   message="topic deleted")


def test_delete_topic_while_consuming(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    assert_delivered(confluent_produce(bs, topic, [Rec(None, b"x", (), None)] * 10))
    c = Consumer(consumer_conf(bs, **{"fetch.wait.max.ms": 100}))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got = 0
        for _ in range(30):
            msg = c.poll(0.1)
            got += msg is not None and not msg.error()
        admin = admin_client(bs)
        assert error_code(admin.delete_topics([topic], request_timeout=15)[topic]) == 0
        for _ in range(20):
            c.poll(0.1)
    finally:
        c.close()
    assert got == 10
    assert shared_broker.is_running()
    create_topic(bs, topic)
    assert watermarks(bs, topic) == (0, 0)


def test_many_partitions(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=64)
    p = Producer(producer_conf(bs, **{"linger.ms": 20}))
    errors = []
    for part in range(64):
        p.produce(topic, b"p%d" % part, partition=part, on_delivery=lambda e, m: errors.append(e))
    assert p.flush(30) == 0 and len(errors) == 64 and not any(errors)
    for part in (0, 31, 63):
        assert [g.value for g in confluent_consume(bs, topic, 1, partition=part)] == \
            [b"p%d" % part]


def test_kafka_python_describe_selected_config_keys(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, config={"retention.ms": "1000000"})
    admin = kp_admin(bs)
    try:
        res = KConfigResource(ConfigResourceType.TOPIC, topic,
                              configs={"retention.ms": None, "cleanup.policy": None})
        cfg = admin.describe_configs([res], config_filter="all")["topic"][topic]
    finally:
        admin.close()
    assert set(cfg) == {"retention.ms", "cleanup.policy"}
    assert cfg["retention.ms"]["value"] == "1000000"
    assert cfg["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert cfg["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"


def test_keyless_record_refused_on_compacted_topic(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, config={"cleanup.policy": "compact"})
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"keyed", (), None)]))
    res = confluent_produce(bs, topic, [Rec(None, b"no key", (), None)],
                            **{"message.timeout.ms": 5000})
    assert res[0][0] is not None, "keyless record accepted on a compacted topic"
    assert res[0][0].code() == KafkaError.INVALID_RECORD, res[0][0]
    assert watermarks(bs, topic) == (0, 1)


def test_topic_names_colliding_on_dot_and_underscore(shared_broker):
    """Kafka refuses 'a.b' when 'a_b' exists (their metric names collide)."""
    bs = shared_broker.bootstrap
    base = unique_topic("coll").replace("-", "")
    create_topic(bs, base + "_x")
    admin = admin_client(bs)
    other = base + ".x"
    assert error_code(admin.create_topics([NewTopic(other, 1, 1)])[other]) == \
        INVALID_TOPIC_EXCEPTION


def test_broker_level_log_append_time(make_broker):
    b = make_broker(**{"log.message.timestamp.type": "LogAppendTime"})
    topic = create_topic(b.bootstrap, unique_topic("lat"))
    configs = describe_topic(b.bootstrap, topic)
    assert configs["message.timestamp.type"].value == "LogAppendTime"
    assert_delivered(confluent_produce(b.bootstrap, topic, [Rec(None, b"v", (), 1000)]))
    [g] = confluent_consume(b.bootstrap, topic, 1)
    assert g.timestamp_type == "log_append" and g.timestamp > 1000
