"""LogConfig: Kafka names, defaults, parsing and validation."""

from __future__ import annotations

import pytest

from moldau.storage.config import LONG_MAX, LogConfig


def test_defaults_are_kafkas() -> None:
    config = LogConfig()
    assert config.segment_bytes == 1073741824
    assert config.segment_ms == 604800000
    assert config.segment_index_bytes == 10485760
    assert config.index_interval_bytes == 4096
    assert config.max_message_bytes == 1048588
    assert config.flush_messages == LONG_MAX
    assert config.flush_ms == LONG_MAX
    assert config.message_timestamp_type == "CreateTime"
    assert config.retention_ms == 604800000
    assert config.retention_bytes == -1
    assert config.cleanup_policy == "delete"
    assert config.delete and not config.compact and not config.log_append_time


def test_from_properties_parses_kafka_names() -> None:
    config = LogConfig.from_properties(
        {
            "segment.bytes": "2048",
            "segment.ms": "60000",
            "segment.index.bytes": "4096",
            "index.interval.bytes": "100",
            "max.message.bytes": "5000",
            "flush.messages": "1",
            "flush.ms": "1000",
            "message.timestamp.type": "LogAppendTime",
            "retention.ms": "-1",
            "retention.bytes": "1000000",
            "cleanup.policy": "compact, delete",
            "min.insync.replicas": "2",  # another layer's key: ignored
        }
    )
    assert config == LogConfig(
        segment_bytes=2048,
        segment_ms=60000,
        segment_index_bytes=4096,
        index_interval_bytes=100,
        max_message_bytes=5000,
        flush_messages=1,
        flush_ms=1000,
        message_timestamp_type="LogAppendTime",
        retention_ms=-1,
        retention_bytes=1000000,
        cleanup_policy="compact,delete",
    )
    assert config.compact and config.delete and config.log_append_time


def test_from_properties_overlays_a_base() -> None:
    base = LogConfig(segment_bytes=4096, retention_ms=1)
    config = LogConfig.from_properties({"retention.ms": "5"}, base)
    assert config.segment_bytes == 4096 and config.retention_ms == 5


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("segment.bytes", "abc"),
        ("segment.bytes", "13"),
        ("segment.bytes", str(2**31)),
        ("segment.ms", "0"),
        ("segment.index.bytes", "3"),
        ("index.interval.bytes", "-1"),
        ("max.message.bytes", "1.5"),
        ("flush.messages", "0"),
        ("flush.ms", "-1"),
        ("retention.ms", "-2"),
        ("retention.bytes", "x"),
        ("message.timestamp.type", "WallClock"),
        ("cleanup.policy", "remove"),
        ("cleanup.policy", "delete,remove"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        LogConfig.from_properties({key: value})


def test_empty_cleanup_policy_neither_deletes_nor_compacts() -> None:
    """Kafka's ValidList.in(compact, delete) takes an empty list (Kafka 4.2's
    UnifiedLog.deleteOldSegments: no retention, no compaction)."""
    config = LogConfig.from_properties({"cleanup.policy": ""})
    assert (config.delete, config.compact) == (False, False)


def test_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match=r"segment\.bytes"):
        LogConfig(segment_bytes=0)


def test_to_properties_round_trips() -> None:
    config = LogConfig(segment_bytes=12345, message_timestamp_type="LogAppendTime")
    assert LogConfig.from_properties(config.to_properties()) == config
