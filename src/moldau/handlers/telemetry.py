"""GetTelemetrySubscriptions (key 71) and PushTelemetry (key 72): KIP-714 client
telemetry, answered by :class:`moldau.broker.client_metrics.ClientMetrics` (the empty
subscription: clients collect and push nothing). Served only with
``moldau.client.telemetry.enable`` (see :mod:`moldau.handlers.api_versions`)."""

from __future__ import annotations

from typing import Any

from moldau.broker.client_metrics import ACCEPTED_COMPRESSION_TYPES
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

GET_TELEMETRY_SUBSCRIPTIONS = ALL_APIS[71]
PUSH_TELEMETRY = ALL_APIS[72]
_get = codec_for(GET_TELEMETRY_SUBSCRIPTIONS)
_push = codec_for(PUSH_TELEMETRY)


@handles(GET_TELEMETRY_SUBSCRIPTIONS, 0, 0)
def get_telemetry_subscriptions(broker: Any, header: Any, request: Any) -> Any:
    if not broker.config.bool("moldau.client.telemetry.enable"):  # not advertised
        return _get.Response(throttle_time_ms=0, error_code=int(ErrorCode.UNSUPPORTED_VERSION))
    manager = broker.client_metrics
    code, instance = manager.get_subscription(request.client_instance_id)
    response = _get.Response(throttle_time_ms=0, error_code=int(code), client_instance_id=instance.instance_id)
    if code == ErrorCode.NONE:
        response.subscription_id = instance.subscription_id
        response.accepted_compression_types = list(ACCEPTED_COMPRESSION_TYPES)
        response.push_interval_ms = instance.push_interval_ms
        response.telemetry_max_bytes = manager.telemetry_max_bytes
        response.delta_temporality = True
        response.requested_metrics = []
    return response


@handles(PUSH_TELEMETRY, 0, 0)
def push_telemetry(broker: Any, header: Any, request: Any) -> Any:
    if not broker.config.bool("moldau.client.telemetry.enable"):  # not advertised
        return _push.Response(throttle_time_ms=0, error_code=int(ErrorCode.UNSUPPORTED_VERSION))
    code = broker.client_metrics.push(
        request.client_instance_id, request.subscription_id, request.terminating,
        request.compression_type, request.metrics,
    )
    return _push.Response(throttle_time_ms=0, error_code=int(code))
