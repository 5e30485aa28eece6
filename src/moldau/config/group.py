"""Dynamic group configs (KIP-848, KIP-932): Kafka's GroupConfig names, each defaulting to
the broker config it overrides for one group.

Set with IncrementalAlterConfigs on the GROUP resource (type 32), shown by
DescribeConfigs; stored in the metadata store (kind :data:`GROUP_CONFIG_KIND`, one key
per group, the values as JSON), so every broker of a cluster sees them and they
survive restarts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moldau.config.definitions import ConfigType

GROUP_RESOURCE = 32
GROUP_CONFIG_KIND = "group_configs"


def _int_at_least(low: int) -> Callable[[str], object]:
    def parse(text: str) -> object:
        value = int(text)
        if value < low:
            raise ValueError(f"must be at least {low}")
        return value
    return parse


def _one_of(*choices: str) -> Callable[[str], object]:
    def parse(text: str) -> object:
        if text.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text.lower()
    return parse


def _offset_reset(text: str) -> object:
    lowered = text.lower()
    if lowered in ("latest", "earliest"):
        return lowered
    if lowered.startswith("by_duration:") and len(lowered) > len("by_duration:"):
        return lowered
    raise ValueError("must be latest, earliest or by_duration:<ISO-8601 duration>")


@dataclass(frozen=True)
class GroupConfigDef:
    name: str
    type: ConfigType
    #: the broker config whose value is the default, or None for a literal default
    broker_key: str | None
    default: str | None
    parse: Callable[[str], object]


GROUP_CONFIGS: dict[str, GroupConfigDef] = {
    d.name: d
    for d in (
        GroupConfigDef("consumer.session.timeout.ms", ConfigType.INT, "group.consumer.session.timeout.ms", None,
                       _int_at_least(1)),
        GroupConfigDef("consumer.heartbeat.interval.ms", ConfigType.INT, "group.consumer.heartbeat.interval.ms", None,
                       _int_at_least(1)),
        GroupConfigDef("share.session.timeout.ms", ConfigType.INT, "group.share.session.timeout.ms", None,
                       _int_at_least(1)),
        GroupConfigDef("share.heartbeat.interval.ms", ConfigType.INT, "group.share.heartbeat.interval.ms", None,
                       _int_at_least(1)),
        GroupConfigDef("share.record.lock.duration.ms", ConfigType.INT, "group.share.record.lock.duration.ms", None,
                       _int_at_least(1000)),
        GroupConfigDef("share.delivery.count.limit", ConfigType.INT, "group.share.delivery.count.limit", None,
                       _int_at_least(2)),
        GroupConfigDef("share.partition.max.record.locks", ConfigType.INT, "group.share.partition.max.record.locks",
                       None, _int_at_least(100)),
        GroupConfigDef("share.auto.offset.reset", ConfigType.STRING, None, "latest", _offset_reset),
        GroupConfigDef("share.isolation.level", ConfigType.STRING, None, "read_uncommitted",
                       _one_of("read_committed", "read_uncommitted")),
    )
}


def validate_group_configs(values: dict[str, str]) -> dict[str, str]:
    """Check names and values; ValueError names the offending key (INVALID_CONFIG)."""
    out = {}
    for key, text in values.items():
        definition = GROUP_CONFIGS.get(key)
        if definition is None:
            raise ValueError(f"Unknown group config name: {key}")
        try:
            definition.parse(text)
        except ValueError as exc:
            raise ValueError(f"Invalid value {text} for configuration {key}: {exc}") from None
        out[key] = text
    return out


def group_config_value(broker_config: Any, overrides: dict[str, str], key: str) -> Any:
    """A group config's effective value: the group's override, else its default."""
    definition = GROUP_CONFIGS[key]
    if key in overrides:
        return definition.parse(overrides[key])
    if definition.broker_key is not None:
        return broker_config[definition.broker_key]
    return definition.parse(definition.default or "")


def encode(values: dict[str, str]) -> str:
    return json.dumps(values, sort_keys=True)


def decode(text: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in json.loads(text).items()}
