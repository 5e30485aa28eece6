"""AlterConfigs (33) and IncrementalAlterConfigs (44) for topics and the broker.

Topic overrides are validated (INVALID_CONFIG with a message naming the key), written
to the metadata store, and applied to the partitions' logs at once. Broker configs that
Kafka allows to change at run time can be set for this broker (resource name = its id)
or as cluster-wide defaults (empty resource name); they persist in the metadata store
and every topic default that follows them changes with them. AlterConfigs replaces a
resource's whole set of dynamic values; IncrementalAlterConfigs sets, deletes, appends
to or subtracts from single keys.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from moldau.config.broker import validate_topic_configs
from moldau.config.definitions import (
    BROKER_CONFIGS,
    KAFKA_PER_BROKER_CONFIGS,
    TOPIC_CONFIGS,
    ConfigType,
    broker_definition,
)
from moldau.config.group import GROUP_CONFIG_KIND, validate_group_configs
from moldau.config.group import encode as encode_group_configs
from moldau.handlers import authorize as authz
from moldau.handlers.configs import BROKER, BROKER_LOGGER, GROUP, TOPIC
from moldau.handlers.forwarding import forward_or_refuse
from moldau.handlers.pacing import paced
from moldau.handlers.registry import codec_for, handles, item_error
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS
from moldau.storage.config import LogConfig

log = logging.getLogger(__name__)

ALTER_CONFIGS = ALL_APIS[33]
INCREMENTAL_ALTER_CONFIGS = ALL_APIS[44]
_alter = codec_for(ALTER_CONFIGS)
_incremental = codec_for(INCREMENTAL_ALTER_CONFIGS)

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _list_type(key: str, resource_type: int) -> bool:
    definitions = TOPIC_CONFIGS if resource_type == TOPIC else BROKER_CONFIGS
    definition = definitions.get(key)
    return definition is not None and definition.type == ConfigType.LIST


def _apply_operations(current: dict[str, str], configs: list[Any], resource_type: int) -> dict[str, str]:
    result = dict(current)
    for c in configs:
        op = c.config_operation
        if op == SET:
            if c.value is None:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {c.name}")
            result[c.name] = c.value
        elif op == DELETE:
            result.pop(c.name, None)
        elif op in (APPEND, SUBTRACT):
            if not _list_type(c.name, resource_type):
                raise KafkaError(
                    ErrorCode.INVALID_CONFIG,
                    f"Config value append is not allowed for config key: {c.name}"
                    if op == APPEND
                    else f"Config value subtract is not allowed for config key: {c.name}",
                )
            definitions = TOPIC_CONFIGS if resource_type == TOPIC else BROKER_CONFIGS
            existing = result.get(c.name)
            items = (existing.split(",") if existing else
                     [str(v) for v in (definitions[c.name].default or [])])  # type: ignore[union-attr]
            items = [i.strip() for i in items if i.strip()]
            given = [v.strip() for v in (c.value or "").split(",") if v.strip()]
            if op == APPEND:
                items += [v for v in given if v not in items]
            else:
                items = [v for v in items if v not in given]
            result[c.name] = ",".join(items)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown config operation {op} for {c.name}")
    return result


async def _alter_topic(broker: Any, name: str, overrides: dict[str, str], validate_only: bool) -> None:
    topic = broker.topics.get(name)
    if topic is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist")
    try:
        canonical = validate_topic_configs(dict(overrides))
    except ValueError as exc:
        raise KafkaError(ErrorCode.INVALID_CONFIG, str(exc)) from None
    if validate_only:
        return
    updated = type(topic)(topic.name, topic.topic_id, dict(topic.partitions), canonical)
    await broker.controller.update_topic(updated)


def _broker_scope(broker: Any, name: str) -> str:
    """The scope of a broker resource: "" (cluster-wide default) or a live broker's id.
    The controller writes any broker's dynamic configs (requests are forwarded to it);
    each broker applies its own and the defaults."""
    if name in ("", str(broker.node_id)) or name in {str(b.broker_id) for b in broker.live_brokers()}:
        return name
    raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unexpected broker id, expected {broker.node_id} or empty")


async def _alter_broker(broker: Any, scope: str, values: dict[str, str], validate_only: bool) -> None:
    """Kafka's dynamic broker config rules (DynamicBrokerConfig.validateConfigs, via
    ConfigAdminManager, which answers INVALID_REQUEST for what they refuse): a key that
    cannot change at run time, a per-broker key at the cluster-wide scope and a value
    of the wrong type are refused; a key the broker does not know is kept and has no
    effect (Kafka's custom keys: ``cleanup.policy``, or Kerberos settings here)."""
    for key, value in values.items():
        definition = broker_definition(BROKER_CONFIGS, key)
        if definition is None:
            if scope == "" and key in KAFKA_PER_BROKER_CONFIGS:
                raise KafkaError(
                    ErrorCode.INVALID_REQUEST,
                    f"Cannot update these configs at default cluster level, broker id must be specified: {key}",
                )
            continue
        if definition.read_only:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Cannot update these configs dynamically: {key}")
        try:
            definition.parse(value)
        except ValueError as exc:
            raise KafkaError(ErrorCode.INVALID_REQUEST, str(exc)) from None
    trial = copy.copy(broker.config)  # the whole combination, before anything is stored
    layers = {**broker.dynamic_configs, scope: values}
    try:
        trial.set_dynamic(layers.get("", {}), layers.get(str(broker.node_id), {}))
        LogConfig.from_properties(trial.effective_topic_config({}))  # the topic defaults it gives
    except ValueError as exc:
        raise KafkaError(ErrorCode.INVALID_REQUEST, str(exc)) from None
    if not validate_only:
        await broker.set_dynamic_configs(scope, values)


async def _alter_group(broker: Any, resource: Any, incremental: bool, validate_only: bool) -> None:
    """Group configs: validated, written to the metadata store, applied here (the
    other brokers learn of them from the store's watch)."""
    name = resource.resource_name
    if not name:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Group name must not be empty")
    current = dict(broker.group_configs.get(name, {}))
    if incremental:
        for c in resource.configs:
            if c.config_operation in (APPEND, SUBTRACT):
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Config value append is not allowed for config key: {c.name}")
        values = _apply_operations(current, resource.configs, GROUP)
    else:
        values = {c.name: c.value for c in resource.configs if c.value is not None}
    try:
        values = validate_group_configs(values)
    except ValueError as exc:
        raise KafkaError(ErrorCode.INVALID_CONFIG, str(exc)) from None
    if validate_only:
        return
    encoded = encode_group_configs(values) if values else None
    await broker.store.update_security(GROUP_CONFIG_KIND, {name: encoded})
    broker.apply_security(GROUP_CONFIG_KIND, name, encoded)


def _current(broker: Any, resource_type: int, name: str) -> dict[str, str]:
    if resource_type == TOPIC:
        topic = broker.topics.get(name)
        return dict(topic.configs) if topic is not None else {}
    return dict(broker.dynamic_configs.get(name, {}))


async def _alter_resource(broker: Any, resource: Any, incremental: bool, validate_only: bool) -> None:
    kind, name = resource.resource_type, resource.resource_name
    if kind == GROUP:
        await _alter_group(broker, resource, incremental, validate_only)
        return
    if kind not in (TOPIC, BROKER, BROKER_LOGGER):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {kind}")
    if kind == BROKER_LOGGER:
        _broker_scope(broker, name)
        return  # log levels are accepted and not persisted
    if kind == BROKER:
        _broker_scope(broker, name)
    names = [c.name for c in resource.configs]
    if len(set(names)) != len(names):
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
    if incremental:
        values = _apply_operations(_current(broker, kind, name), resource.configs, kind)
    else:
        values = {}
        for c in resource.configs:
            if c.value is None:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {c.name}")
            values[c.name] = c.value
    if kind == TOPIC:
        await _alter_topic(broker, name, values, validate_only)
    else:
        await _alter_broker(broker, name, values, validate_only)


async def _answer(broker: Any, header: Any, request: Any, codec: Any, incremental: bool) -> Any:
    Result = codec.Response.of("responses")

    def refuse(code: ErrorCode, message: str) -> Any:
        return codec.Response(throttle_time_ms=0, responses=[
            Result(error_code=int(code), error_message=message,
                   resource_type=r.resource_type, resource_name=r.resource_name)
            for r in request.resources
        ])

    # log levels are this broker's own business; everything else is the controller's
    if any(r.resource_type != BROKER_LOGGER for r in request.resources):
        forwarded = await forward_or_refuse(broker, header, request, refuse)
        if forwarded is not None:
            return forwarded
    results = []
    async for resource in paced(request.resources):
        result = Result(
            error_code=0, error_message=None,
            resource_type=resource.resource_type, resource_name=resource.resource_name,
        )
        try:
            refused = authz.config_resource_error(broker, header, authz.ALTER_CONFIGS, resource.resource_type, resource.resource_name)
            if refused is not None:
                raise KafkaError(refused, "Authorization failed.")
            await _alter_resource(broker, resource, incremental, request.validate_only)
        except Exception as raised:
            exc = item_error(raised, log)
            result.error_code = int(exc.code)
            result.error_message = exc.message
        results.append(result)
    return codec.Response(throttle_time_ms=0, responses=results)


@handles(ALTER_CONFIGS, 0, 2)
async def alter_configs(broker: Any, header: Any, request: Any) -> Any:
    return await _answer(broker, header, request, _alter, incremental=False)


@handles(INCREMENTAL_ALTER_CONFIGS, 0, 1)
async def incremental_alter_configs(broker: Any, header: Any, request: Any) -> Any:
    return await _answer(broker, header, request, _incremental, incremental=True)
