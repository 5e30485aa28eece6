"""Broker config parsing and the resolution of topic configs against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.config.broker import BrokerConfig, read_properties, validate_topic_configs


def test_defaults_are_kafkas() -> None:
    config = BrokerConfig()
    assert config["num.partitions"] == 1
    assert config["message.max.bytes"] == 1048588
    assert config["log.segment.bytes"] == 1073741824
    assert config["log.retention.ms"] == 7 * 24 * 3600 * 1000
    assert config["auto.create.topics.enable"] is True


def test_coarse_keys_feed_fine_ones() -> None:
    config = BrokerConfig({"log.retention.hours": "2", "log.roll.hours": "1"})
    assert config["log.retention.ms"] == 7_200_000
    assert config.topic_default("retention.ms") == 7_200_000
    assert config.topic_default("segment.ms") == 3_600_000
    assert config.topic_default_is_from_broker("retention.ms")


def test_finer_key_wins() -> None:
    config = BrokerConfig({"log.retention.hours": "2", "log.retention.ms": "1000"})
    assert config["log.retention.ms"] == 1000


@pytest.mark.parametrize(
    ("key", "value"),
    [("num.partitions", "zero"), ("num.partitions", "0"), ("auto.create.topics.enable", "maybe"),
     ("log.cleanup.policy", "shred"), ("message.max.bytes", "99999999999")],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        BrokerConfig({key: value})


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ValueError, match="no.such.key"):
        BrokerConfig({"no.such.key": "1"})


def test_topic_overrides_are_validated_and_canonical() -> None:
    assert validate_topic_configs({"retention.ms": " 5000 ", "cleanup.policy": "compact,delete"}) == {
        "retention.ms": "5000",
        "cleanup.policy": "compact,delete",
    }
    with pytest.raises(ValueError, match="segment.bytes"):
        validate_topic_configs({"segment.bytes": "1"})
    with pytest.raises(ValueError, match="bogus"):
        validate_topic_configs({"bogus": "1"})


def test_effective_topic_config_applies_overrides() -> None:
    config = BrokerConfig({"log.segment.bytes": "1048576"})
    effective = config.effective_topic_config({"retention.ms": "10"})
    assert effective["segment.bytes"] == "1048576"
    assert effective["retention.ms"] == "10"
    assert effective["cleanup.policy"] == "delete"


def test_server_properties_file(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text("# comment\nnum.partitions=3\n\nlog.retention.hours : 5\n")
    assert read_properties(path) == {"num.partitions": "3", "log.retention.hours": "5"}
    path.write_text("garbage line\n")
    with pytest.raises(ValueError, match="server.properties:1"):
        read_properties(path)


def test_connection_creation_rate_per_listener_falls_back_to_the_broker_wide_one() -> None:
    config = BrokerConfig({"max.connection.creation.rate": "50",
                           "listener.name.clients.max.connection.creation.rate": "5"})
    assert config.for_listener("CLIENTS", "max.connection.creation.rate") == 5
    assert config.for_listener("REPLICATION", "max.connection.creation.rate") == 50
    with pytest.raises(ValueError):
        BrokerConfig({"listener.name.clients.max.connection.creation.rate": "-1"})
