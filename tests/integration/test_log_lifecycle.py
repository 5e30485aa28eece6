"""Retention, DeleteRecords and run-time config changes, seen through real clients."""

from __future__ import annotations

import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
)
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KPConfigResource
from kafka.admin import ConfigResourceType as KPConfigResourceType
from tests.integration.kafka_helpers import (
    Rec,
    admin_client,
    assert_delivered,
    confluent_consume,
    confluent_produce,
    create_topic,
    wait_until,
    watermarks,
)


def _describe(bootstrap: str, topic: str) -> dict[str, ConfigEntry]:
    admin = admin_client(bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res], request_timeout=10)[res].result(timeout=15)


def _records(n: int, timestamp: int, size: int = 200) -> list[Rec]:
    return [Rec(b"k%d" % i, bytes([i % 251]) * size, (), timestamp) for i in range(n)]


def test_retention_by_time_removes_old_segments(make_broker, topic):
    b = make_broker(**{"log.retention.check.interval.ms": 200})
    bs = b.bootstrap
    create_topic(bs, topic, config={"segment.bytes": "4096", "retention.ms": "60000"})
    old = int(time.time() * 1000) - 3_600_000
    assert_delivered(confluent_produce(bs, topic, _records(60, old), chunks=12))
    fresh = _records(5, int(time.time() * 1000))
    assert_delivered(confluent_produce(bs, topic, fresh), first_offset=60)
    wait_until(lambda: watermarks(bs, topic)[0] > 0, timeout=15, message="log start offset moved")
    # retention goes on every 200 ms until only segments with fresh records are left
    seen: list[int] = []

    def settled() -> bool:
        seen.append(watermarks(bs, topic)[0])
        return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

    wait_until(settled, timeout=15, interval=0.5, message="retention settled")
    low, high = watermarks(bs, topic)
    assert high == 65
    assert 0 < low <= 60
    got = confluent_consume(bs, topic, high - low, start=0, **{"auto.offset.reset": "earliest"})
    assert got[0].offset == low
    assert [g.offset for g in got][-5:] == [60, 61, 62, 63, 64]


def test_retention_by_size_keeps_the_newest_bytes(make_broker, topic):
    b = make_broker(**{"log.retention.check.interval.ms": 200})
    bs = b.bootstrap
    create_topic(bs, topic, config={"segment.bytes": "4096", "retention.bytes": "8192"})
    assert_delivered(confluent_produce(bs, topic, _records(100, int(time.time() * 1000)), chunks=25))
    wait_until(lambda: watermarks(bs, topic)[0] > 0, timeout=15, message="size retention ran")
    segments = sorted((b.data_dir / f"{topic}-0").glob("*.log"))
    total = sum(p.stat().st_size for p in segments)
    assert total <= 8192 + 4096 + 1024  # the active segment may exceed the budget
    assert watermarks(bs, topic)[1] == 100


def test_delete_records_moves_low_watermark_and_survives_restart(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic)
    assert_delivered(confluent_produce(bs, topic, _records(30, int(time.time() * 1000)), chunks=3))
    admin = admin_client(bs)
    futures = admin.delete_records([TopicPartition(topic, 0, 12)], request_timeout=10)
    result = next(iter(futures.values())).result(timeout=15)
    assert result.low_watermark == 12
    assert watermarks(bs, topic) == (12, 30)
    # kafka-python's admin does the same, with -1 meaning "up to the high watermark"
    kp = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
    try:
        from kafka.structs import TopicPartition as KPTopicPartition

        answer = kp.delete_records({KPTopicPartition(topic, 0): 20})
        assert answer[KPTopicPartition(topic, 0)]["low_watermark"] == 20
    finally:
        kp.close()
    broker.kill9()
    broker.restart()
    assert watermarks(bs, topic) == (20, 30)
    got = confluent_consume(bs, topic, 10, start=0, **{"auto.offset.reset": "earliest"})
    assert [g.offset for g in got] == list(range(20, 30))


def test_topic_config_altered_takes_effect_and_survives_restart(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic)
    admin = admin_client(bs)
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("retention.ms", "123456", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    admin.incremental_alter_configs([res], request_timeout=10)[res].result(timeout=15)
    configs = _describe(bs, topic)
    assert configs["max.message.bytes"].value == "2000"
    assert configs["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # takes effect at once: a 5000-byte message is now refused by the broker
    results = confluent_produce(bs, topic, [Rec(b"k", b"x" * 5000, (), None)],
                                **{"message.max.bytes": 100000})
    assert results[0][0] is not None and results[0][0].name() == "MSG_SIZE_TOO_LARGE"
    broker.restart()
    configs = _describe(bs, topic)
    assert configs["retention.ms"].value == "123456"
    assert configs["max.message.bytes"].value == "2000"
    # deleting the override brings the default back
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("max.message.bytes", None,
                                         incremental_operation=AlterConfigOpType.DELETE)],
    )
    admin = admin_client(bs)
    admin.incremental_alter_configs([res], request_timeout=10)[res].result(timeout=15)
    assert _describe(bs, topic)["max.message.bytes"].value == "1048588"


def test_invalid_topic_config_is_refused_naming_the_key(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic)
    admin = admin_client(bs)
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)],
    )
    try:
        admin.incremental_alter_configs([res], request_timeout=10)[res].result(timeout=15)
    except Exception as exc:  # confluent raises KafkaException carrying the broker's error
        assert "INVALID_CONFIG" in str(exc) or "retention.ms" in str(exc)
    else:
        raise AssertionError("an invalid value was accepted")
    assert _describe(bs, topic)["retention.ms"].value == "604800000"


def test_dynamic_broker_config_with_kafka_python(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic)
    kp = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
    try:
        kp.alter_configs([KPConfigResource(KPConfigResourceType.BROKER, "0",
                                           configs={"log.retention.ms": "7200000"})])
        described = kp.describe_configs([KPConfigResource(KPConfigResourceType.BROKER, "0")])
    finally:
        kp.close()
    assert described  # kafka-python returns the raw responses
    configs = _describe(bs, topic)
    assert configs["retention.ms"].value == "7200000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    broker.restart()
    assert _describe(bs, topic)["retention.ms"].value == "7200000"


def test_topic_compression_type_recompresses_on_the_broker(broker, topic):
    from moldau.records import Compression, iter_batches

    bs = broker.bootstrap
    create_topic(bs, topic, config={"compression.type": "zstd"})
    recs = [Rec(b"k%d" % i, b"value-%d" % i * 50, (("h", b"v"),), None) for i in range(20)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=2, **{"compression.type": "lz4"}))
    data = (broker.data_dir / f"{topic}-0" / "00000000000000000000.log").read_bytes()
    codecs = {b.compression for b in iter_batches(data)}
    assert codecs == {Compression.ZSTD}
    got = confluent_consume(bs, topic, 20)
    assert [g.value for g in got] == [r.value for r in recs]
    assert [g.headers for g in got] == [r.headers for r in recs]


def test_timestamps_out_of_range_are_refused(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic, config={"message.timestamp.after.max.ms": "60000"})
    future = int(time.time() * 1000) + 3_600_000
    results = confluent_produce(bs, topic, [Rec(b"k", b"v", (), future)])
    assert results[0][0] is not None and results[0][0].name() == "INVALID_TIMESTAMP"
    assert_delivered(confluent_produce(bs, topic, [Rec(b"k", b"v", (), None)]))
