"""ListConfigResources (key 74): what DescribeConfigs/AlterConfigs can name, as Kafka 4.1.

Kafka's ``KafkaApis.handleListConfigResources``: DESCRIBE_CONFIGS on the cluster or
CLUSTER_AUTHORIZATION_FAILED; v0 (the old ListClientMetricsResources) lists client
metrics subscriptions only; v1 lists the requested types, every supported type when none
is named, and answers UNSUPPORTED_VERSION (no resources) when a named type is not one of
TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP. Rows come in Kafka's fixed type
order (GROUP, CLIENT_METRICS, BROKER_LOGGER, BROKER, TOPIC), whatever the request's
order. Groups are those with configs of their own; Moldau has no client metrics
subscriptions, so that type lists nothing; brokers are the live ones with an endpoint on
the request's listener.
"""

from __future__ import annotations

from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles, listener_of
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

LIST_CONFIG_RESOURCES = ALL_APIS[74]
_codec = codec_for(LIST_CONFIG_RESOURCES)
_Resource = _codec.Response.of("config_resources")

TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32
SUPPORTED = (GROUP, CLIENT_METRICS, BROKER_LOGGER, BROKER, TOPIC)  # Kafka's row order


@handles(LIST_CONFIG_RESOURCES, 0, 1)
def list_config_resources(broker: Any, header: Any, request: Any) -> Any:
    if not authz.cluster_allowed(broker, header, authz.DESCRIBE_CONFIGS):
        return _answer(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, [])
    if header.api_version == 0:
        wanted = {CLIENT_METRICS}
    else:
        named = set(request.resource_types or ())
        if named - set(SUPPORTED):
            return _answer(ErrorCode.UNSUPPORTED_VERSION, [])
        wanted = named or set(SUPPORTED)
    brokers = sorted(b.broker_id for b in broker.live_brokers(listener_of(header)))
    rows: list[Any] = []
    for kind in SUPPORTED:
        if kind not in wanted:
            continue
        if kind in (BROKER_LOGGER, BROKER):
            names = [str(b) for b in brokers]
        elif kind == TOPIC:
            names = sorted(broker.topics)
        elif kind == GROUP:  # the groups with configs of their own (IncrementalAlterConfigs)
            names = sorted(g for g, values in getattr(broker, "group_configs", {}).items() if values)
        else:  # no client metrics subscriptions in Moldau
            names = []
        rows += [_Resource(resource_name=name, resource_type=kind) for name in names]
    return _answer(ErrorCode.NONE, rows)


def _answer(code: ErrorCode, rows: list[Any]) -> Any:
    return _codec.Response(throttle_time_ms=0, error_code=int(code), config_resources=rows)
