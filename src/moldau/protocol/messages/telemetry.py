"""GetTelemetrySubscriptions (key 71) and PushTelemetry (key 72): KIP-714 client metrics.

Kafka 3.7+ states validVersions 0 for both.
"""

from moldau.protocol.schema import Api

GET_TELEMETRY_SUBSCRIPTIONS = Api(
    key=71,
    name="GetTelemetrySubscriptions",
    versions="0",
    flexible="0+",
    request="""
        client_instance_id: uuid
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        client_instance_id: uuid
        subscription_id: int32
        accepted_compression_types: []int8
        push_interval_ms: int32
        telemetry_max_bytes: int32
        delta_temporality: bool
        requested_metrics: []string
    """,
)

PUSH_TELEMETRY = Api(
    key=72,
    name="PushTelemetry",
    versions="0",
    flexible="0+",
    request="""
        client_instance_id: uuid
        subscription_id: int32
        terminating: bool
        compression_type: int8
        metrics: bytes
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
    """,
)
