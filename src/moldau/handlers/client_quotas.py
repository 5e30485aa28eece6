"""DescribeClientQuotas (48) and AlterClientQuotas (49): quotas by user and client id.

As Kafka: describing needs DESCRIBE_CONFIGS on the cluster, altering ALTER_CONFIGS
(CLUSTER_AUTHORIZATION_FAILED); entities are ``user`` and/or ``client-id``, each a name
or, with a null name, the default; the keys are ``producer_byte_rate``,
``consumer_byte_rate`` and ``request_percentage`` (anything else, a repeated entity
type or a negative value is INVALID_REQUEST for that entry). Changes are stored first
(one metadata-store entry per entity), then applied here; other brokers apply them
from their watch. See :mod:`moldau.security.quotas` for how they are enforced.
"""

from __future__ import annotations

import json
from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages.client_quotas import ALTER_CLIENT_QUOTAS, DESCRIBE_CLIENT_QUOTAS
from moldau.security.quotas import CLIENT_ID, QUOTA_KEYS, QUOTA_KIND, USER, Entity, entity_key

_describe = codec_for(DESCRIBE_CLIENT_QUOTAS)
_DescribeEntry = _describe.Response.of("entries")
_DescribeEntity = _DescribeEntry.of("entity")
_Value = _DescribeEntry.of("values")
_alter = codec_for(ALTER_CLIENT_QUOTAS)
_AlterEntry = _alter.Response.of("entries")
_AlterEntity = _AlterEntry.of("entity")

ENTITY_TYPES = frozenset({USER, CLIENT_ID})
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2


def _entity(items: Any) -> Entity:
    pairs = [(e.entity_type, e.entity_name) for e in items]
    types = [t for t, _ in pairs]
    if not pairs:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "an entity needs at least one entity type")
    if len(set(types)) != len(types):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"duplicate entity type in {types}")
    for t in types:
        if t not in ENTITY_TYPES:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"unsupported entity type {t!r} (user and client-id are)")
    return tuple(sorted(pairs))


@handles(DESCRIBE_CLIENT_QUOTAS, 0, 1)
def describe_client_quotas(broker: Any, header: Any, request: Any) -> Any:
    response = _describe.Response(throttle_time_ms=0, error_code=0, error_message=None, entries=[])
    refused = authz.cluster_error(broker, header, authz.DESCRIBE_CONFIGS)
    if refused is not None:
        response.error_code, response.entries = int(refused), None
        return response
    wanted: dict[str, Any] = {}
    for c in request.components:
        if c.entity_type not in ENTITY_TYPES or c.entity_type in wanted or c.match_type not in (0, 1, 2):
            response.error_code, response.entries = int(ErrorCode.INVALID_REQUEST), None
            response.error_message = f"invalid filter component {c.entity_type!r}"
            return response
        wanted[c.entity_type] = c
    for entity, quotas in sorted(broker.quotas.entities.items(), key=lambda kv: entity_key(kv[0])):
        names = dict(entity)
        if request.strict and set(names) != set(wanted):
            continue
        if not all(t in names and _matches(c, names[t]) for t, c in wanted.items()):
            continue
        response.entries.append(_DescribeEntry(
            entity=[_DescribeEntity(entity_type=t, entity_name=n) for t, n in entity],
            values=[_Value(key=k, value=v) for k, v in sorted(quotas.items())],
        ))
    return response


def _matches(component: Any, name: str | None) -> bool:
    if component.match_type == MATCH_EXACT:
        return name is not None and name == component.match
    if component.match_type == MATCH_DEFAULT:
        return name is None
    return name is not None


@handles(ALTER_CLIENT_QUOTAS, 0, 1)
async def alter_client_quotas(broker: Any, header: Any, request: Any) -> Any:
    refused = authz.cluster_error(broker, header, authz.ALTER_CONFIGS)
    results = []
    changes: dict[str, str | None] = {}
    for entry in request.entries:
        result = _AlterEntry(error_code=0, error_message=None, entity=[
            _AlterEntity(entity_type=e.entity_type, entity_name=e.entity_name) for e in entry.entity])
        results.append(result)
        try:
            if refused is not None:
                raise KafkaError(refused)
            entity = _entity(entry.entity)
            key = entity_key(entity)
            quotas = dict(broker.quotas.entities.get(entity, {}))
            if key in changes:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "the same entity twice in one request")
            for op in entry.ops:
                if op.key not in QUOTA_KEYS:
                    raise KafkaError(ErrorCode.INVALID_REQUEST, f"unknown quota key {op.key!r}")
                if op.remove:
                    quotas.pop(op.key, None)
                elif op.value <= 0:
                    raise KafkaError(ErrorCode.INVALID_REQUEST, f"{op.key} must be positive, got {op.value}")
                else:
                    quotas[op.key] = float(op.value)
            if not request.validate_only:
                changes[key] = json.dumps(quotas, sort_keys=True) if quotas else None
        except KafkaError as exc:
            result.error_code, result.error_message = int(exc.code), exc.message
    if changes:

        async def step() -> None:
            await broker.store.update_security(QUOTA_KIND, changes)
            for key, value in changes.items():
                broker.apply_security(QUOTA_KIND, key, value)

        try:
            await broker.changes.run(step)
        except Exception as exc:
            for result in results:
                if result.error_code == 0:
                    result.error_code = int(ErrorCode.UNKNOWN_SERVER_ERROR)
                    result.error_message = f"could not store the quotas: {exc}"
    return _alter.Response(throttle_time_ms=0, entries=results)
