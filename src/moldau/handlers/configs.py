"""DescribeConfigs (key 32) for topics and the broker, with Kafka's sources and synonyms.

Every documented key is listed, with its default when it is not set, because tools
crash on missing keys (Schema Registry reads cleanup.policy, others num.partitions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moldau.config.broker import DERIVED_KEYS, usable_topic_configs
from moldau.config.definitions import BROKER_CONFIGS, CONFIG_TYPE_CODES, TOPIC_CONFIGS
from moldau.config.group import GROUP_CONFIGS, GROUP_RESOURCE, group_config_value
from moldau.handlers import authorize as authz
from moldau.handlers.pacing import PACE, Pacer, paced
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

DESCRIBE_CONFIGS = ALL_APIS[32]
_codec = codec_for(DESCRIBE_CONFIGS)
_Result = _codec.Response.of("results")
_Entry = _Result.of("configs")
_Synonym = _Entry.of("synonyms")

TOPIC = 2
BROKER = 4
BROKER_LOGGER = 8
GROUP = GROUP_RESOURCE

# Kafka's ConfigSource codes.
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
DYNAMIC_GROUP_CONFIG = 8


@dataclass
class ConfigEntry:
    name: str
    value: str | None
    config_source: int
    read_only: bool
    is_sensitive: bool
    config_type: int
    documentation: str | None
    synonyms: list[tuple[str, str | None, int]] = field(default_factory=list)


_LAYER_SOURCE = {
    "dynamic_broker": DYNAMIC_BROKER_CONFIG,
    "dynamic_default": DYNAMIC_DEFAULT_BROKER_CONFIG,
    "static": STATIC_BROKER_CONFIG,
    "default": DEFAULT_CONFIG,
}


def _broker_synonyms(broker: Any, key: str) -> list[tuple[str, str | None, int]]:
    """The broker settings behind ``key``, strongest layer first, those that are set."""
    definition = BROKER_CONFIGS.get(key)
    if definition is None:
        return []
    return [
        (key, definition.render(value), _LAYER_SOURCE[layer])
        for layer, value in broker.config.layer_values(key)
    ]


def broker_config_entries(broker: Any, keys: list[str] | None, synonyms: bool, docs: bool) -> list[ConfigEntry]:
    entries = []
    for name, definition in sorted(BROKER_CONFIGS.items()):
        if keys is not None and name not in keys:
            continue
        # a key whose value derives from a coarser one (log.retention.ms from
        # log.retention.hours) is described as Kafka describes it: its own default
        # (null) until it is set itself
        value = broker.config[name] if name not in DERIVED_KEYS or broker.config.is_set(name) else definition.default
        if name == "log.dirs" and value is None:
            value = str(broker.data_dir)
        if name == "listeners":
            listeners = getattr(broker, "listeners", None)
            value = (",".join(li.url() for li in listeners) if listeners
                     else f"PLAINTEXT://{broker.listen.host}:{broker.listen.port}")
        source = _LAYER_SOURCE[broker.config.source_of(name)]
        chain = _broker_synonyms(broker, name) or [(name, definition.render(value), DEFAULT_CONFIG)]
        if definition.sensitive:  # passwords and keys: Kafka never tells them
            value = None
            chain = [(key, None, src) for key, _, src in chain]
        entries.append(
            ConfigEntry(
                name=name,
                value=definition.render(value),
                config_source=source,
                read_only=definition.read_only,
                is_sensitive=definition.sensitive,
                config_type=CONFIG_TYPE_CODES[definition.type],
                documentation=definition.doc or None if docs else None,
                synonyms=chain if synonyms else [],
            )
        )
    return entries


def topic_config_entries(
    broker: Any, overrides: dict[str, str], keys: list[str] | None, synonyms: bool, docs: bool
) -> list[ConfigEntry]:
    entries = []
    for name, definition in sorted(TOPIC_CONFIGS.items()):
        if keys is not None and name not in keys:
            continue
        chain: list[tuple[str, str | None, int]] = []
        if name in overrides:
            chain.append((name, overrides[name], DYNAMIC_TOPIC_CONFIG))
        if definition.synonym is not None:
            chain += _broker_synonyms(broker, definition.synonym)
        default_value = definition.render(broker.config.topic_default(name))
        if name in overrides:
            value, source = overrides[name], DYNAMIC_TOPIC_CONFIG
        elif broker.config.topic_default_is_from_broker(name):
            value = default_value
            source = chain[0][2] if chain else STATIC_BROKER_CONFIG
        else:
            value, source = default_value, DEFAULT_CONFIG
        if source == DEFAULT_CONFIG:
            chain.append((definition.synonym or name, value, DEFAULT_CONFIG))
        entries.append(
            ConfigEntry(
                name=name,
                value=value,
                config_source=source,
                read_only=False,
                is_sensitive=definition.sensitive,
                config_type=CONFIG_TYPE_CODES[definition.type],
                documentation=(definition.doc or None) if docs else None,
                synonyms=chain if synonyms else [],
            )
        )
    return entries


def group_config_entries(broker: Any, group_id: str, keys: list[str] | None, docs: bool) -> list[ConfigEntry]:
    """Every group config (Kafka's GroupConfig), DYNAMIC_GROUP_CONFIG where the group
    overrides it, else DEFAULT_CONFIG with the broker's value."""
    overrides = broker.group_configs.get(group_id, {})
    entries = []
    for name, definition in GROUP_CONFIGS.items():
        if keys and name not in keys:
            continue
        value = group_config_value(broker.config, overrides, name)
        entries.append(ConfigEntry(
            name=name, value=str(value), config_source=DYNAMIC_GROUP_CONFIG if name in overrides else DEFAULT_CONFIG,
            read_only=False, is_sensitive=False, config_type=CONFIG_TYPE_CODES[definition.type],
            documentation=None,
        ))
    return entries


def _to_wire(entry: ConfigEntry) -> Any:
    wire = _Entry(
        name=entry.name,
        value=entry.value,
        read_only=entry.read_only,
        config_source=entry.config_source,
        is_sensitive=entry.is_sensitive,
        config_type=entry.config_type,
        documentation=entry.documentation,
        synonyms=[_Synonym(name=n, value=v, source=s) for n, v, s in entry.synonyms],
    )
    wire.is_default = entry.config_source == DEFAULT_CONFIG
    return wire


@handles(DESCRIBE_CONFIGS, 1, 4)
async def describe_configs(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    synonyms = version >= 1 and request.include_synonyms
    docs = version >= 3 and request.include_documentation
    results = []
    async for resource in paced(request.resources, Pacer(PACE // 20)):  # ~30 entries each
        result = _Result(
            error_code=0,
            error_message=None,
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
            configs=[],
        )
        results.append(result)
        refused = authz.config_resource_error(broker, header, authz.DESCRIBE_CONFIGS, resource.resource_type, resource.resource_name)
        if refused is not None:
            result.error_code = int(refused)
            result.error_message = "Authorization failed."
            continue
        keys = resource.configuration_keys
        if resource.resource_type == TOPIC:
            topic = broker.topics.get(resource.resource_name)
            if topic is None:
                result.error_code = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                result.error_message = f"Topic {resource.resource_name} does not exist"
                continue
            entries = topic_config_entries(broker, usable_topic_configs(topic.name, topic.configs), keys, synonyms, docs)
        elif resource.resource_type == BROKER:
            if resource.resource_name not in ("", str(broker.node_id)):
                result.error_code = int(ErrorCode.INVALID_REQUEST)
                result.error_message = f"Unexpected broker id, expected {broker.node_id}"
                continue
            entries = broker_config_entries(broker, keys, synonyms, docs)
        elif resource.resource_type == BROKER_LOGGER:
            entries = []
        elif resource.resource_type == GROUP:
            entries = group_config_entries(broker, resource.resource_name, keys, docs)
        else:
            result.error_code = int(ErrorCode.INVALID_REQUEST)
            result.error_message = f"Unsupported resource type {resource.resource_type}"
            continue
        result.configs = [_to_wire(e) for e in entries]
    return _codec.Response(throttle_time_ms=0, results=results)
