"""DescribeClientQuotas (48) and AlterClientQuotas (49): quotas by user, client id or IP.

As Kafka (KRaft's ClientQuotaControlManager): describing needs DESCRIBE_CONFIGS on the
cluster, altering ALTER_CONFIGS (CLUSTER_AUTHORIZATION_FAILED). Entities are ``user``
and/or ``client-id``, with the keys ``producer_byte_rate``, ``consumer_byte_rate``
(integers) and ``request_percentage``; or ``ip`` alone, with ``connection_creation_rate``
(an integer). Each name may be null: the default entity. INVALID_REQUEST for that entry:
an unknown or repeated entity type, an empty name, ``ip`` combined with another type, a
name that is no IP address, a key the entity does not take, a value not above 0, a
fraction where an integer is due. Describing with an ``ip`` filter next to a ``user`` or
``client-id`` one is INVALID_REQUEST, an unknown entity type UNSUPPORTED_VERSION.
Changes are stored first (one metadata-store entry per entity), then applied here;
other brokers apply them from their watch. See :mod:`moldau.security.quotas` and
:mod:`moldau.server.limits` for how they are enforced.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages.client_quotas import ALTER_CLIENT_QUOTAS, DESCRIBE_CLIENT_QUOTAS
from moldau.security.quotas import (
    CLIENT_ID,
    CONNECTION_CREATION_RATE,
    CONSUMER_BYTE_RATE,
    IP,
    IP_QUOTA_KEYS,
    PRODUCER_BYTE_RATE,
    QUOTA_KEYS,
    QUOTA_KIND,
    USER,
    Entity,
    entity_key,
)

_describe = codec_for(DESCRIBE_CLIENT_QUOTAS)
_DescribeEntry = _describe.Response.of("entries")
_DescribeEntity = _DescribeEntry.of("entity")
_Value = _DescribeEntry.of("values")
_alter = codec_for(ALTER_CLIENT_QUOTAS)
_AlterEntry = _alter.Response.of("entries")
_AlterEntity = _AlterEntry.of("entity")

ENTITY_TYPES = frozenset({USER, CLIENT_ID, IP})
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2
#: keys whose values are integers in Kafka's QuotaConfig (LONG, INT)
INTEGRAL_KEYS = {PRODUCER_BYTE_RATE: 2**63 - 1, CONSUMER_BYTE_RATE: 2**63 - 1, CONNECTION_CREATION_RATE: 2**31 - 1}


def _entity(items: Any) -> Entity:
    pairs = [(e.entity_type, e.entity_name) for e in items]
    types = [t for t, _ in pairs]
    if not pairs:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Invalid empty client quota entity")
    if len(set(types)) != len(types):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid client quota entity, duplicate entity entry in {types}")
    for t, name in pairs:
        if t not in ENTITY_TYPES:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unhandled client quota entity type: {t}")
        if name is not None and not name:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Empty {t} not supported")
    names = dict(pairs)
    if IP in names:
        if len(pairs) > 1:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             "Invalid quota entity combination, IP entity should not be combined with User or ClientId")
        if names[IP] is not None and not _is_ip(names[IP]):
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"{names[IP]} is not a valid IP or resolvable host.")
    return tuple(sorted(pairs))


def _is_ip(name: str) -> bool:
    """An IP address literal. (Kafka also takes a host name it can resolve; resolving
    here would block the event loop, so names are refused.)"""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _check_value(entity: Entity, key: str, value: float) -> None:
    """Kafka's validateQuotaKeyValue: the key must be one the entity takes, the value
    above 0, and an integer (in range) where the key's type is one."""
    keys = IP_QUOTA_KEYS if entity[0][0] == IP else QUOTA_KEYS
    if key not in keys:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid configuration key {key}")
    if not value > 0:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Quota {key} must be greater than 0")
    limit = INTEGRAL_KEYS.get(key)
    if limit is not None:
        if value > limit:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Proposed value for {key} is too large")
        if abs(value % 1.0) > 1e-6:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"{key} cannot be a fractional value.")


@handles(DESCRIBE_CLIENT_QUOTAS, 0, 1)
def describe_client_quotas(broker: Any, header: Any, request: Any) -> Any:
    response = _describe.Response(throttle_time_ms=0, error_code=0, error_message=None, entries=[])
    refused = authz.cluster_error(broker, header, authz.DESCRIBE_CONFIGS)
    if refused is not None:
        response.error_code, response.entries = int(refused), None
        return response
    wanted: dict[str, Any] = {}
    for c in request.components:
        if (not c.entity_type or c.entity_type in wanted or c.match_type not in (0, 1, 2)
                or (c.match_type == MATCH_EXACT) != (c.match is not None)):
            response.error_code, response.entries = int(ErrorCode.INVALID_REQUEST), None
            response.error_message = f"Invalid filter component {c.entity_type!r}"
            return response
        if c.entity_type not in ENTITY_TYPES:
            response.error_code, response.entries = int(ErrorCode.UNSUPPORTED_VERSION), None
            response.error_message = f"Unsupported entity type {c.entity_type}"
            return response
        wanted[c.entity_type] = c
    if IP in wanted and len(wanted) > 1:
        response.error_code, response.entries = int(ErrorCode.INVALID_REQUEST), None
        response.error_message = ("Invalid entity filter component combination. IP filter component should "
                                  "not be used with user or clientId filter component.")
        return response
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
    return True  # MATCH_SPECIFIED: any entity of the type, defaults too (KRaft's ClientQuotasImage)


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
            seen: set[str] = set()
            for op in entry.ops:
                if op.key in seen:
                    raise KafkaError(ErrorCode.INVALID_REQUEST, f"Duplicate quota key {op.key}")
                seen.add(op.key)
                if op.remove:
                    quotas.pop(op.key, None)
                else:
                    _check_value(entity, op.key, op.value)
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
