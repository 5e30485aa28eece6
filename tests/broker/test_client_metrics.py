"""Client telemetry's broker side (KIP-714) without a broker: the empty subscription and
Kafka's validation of pushes."""

from __future__ import annotations

import uuid

from moldau.broker.client_metrics import ClientMetrics, subscription_id
from moldau.protocol.errors import ErrorCode


def test_the_empty_subscription_and_its_timing() -> None:
    metrics = ClientMetrics(100)
    code, instance = metrics.get_subscription(None, now_ms=1_000)
    assert code == ErrorCode.NONE and instance.instance_id != uuid.UUID(int=0)
    assert instance.subscription_id == subscription_id([], 300_000, instance.instance_id)
    assert metrics.get_subscription(instance.instance_id, now_ms=2_000)[0] == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    assert metrics.get_subscription(instance.instance_id, now_ms=301_000)[0] == ErrorCode.NONE


def test_pushes_are_validated() -> None:
    metrics = ClientMetrics(4)
    _, instance = metrics.get_subscription(None, now_ms=1_000)
    me, sub = instance.instance_id, instance.subscription_id
    assert metrics.push(me, sub, False, 9, b"x", now_ms=1_010) == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    assert metrics.push(me, sub, False, 0, b"x", now_ms=1_020) == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    assert metrics.push(me, sub, False, 0, b"12345", now_ms=301_020) == ErrorCode.TELEMETRY_TOO_LARGE
    assert metrics.push(me, sub, True, 0, b"1234", now_ms=301_030) == ErrorCode.NONE
    assert metrics.pushes == 1 and metrics.pushed_bytes == 4
    assert metrics.push(me, sub, True, 0, b"", now_ms=900_000) == ErrorCode.INVALID_REQUEST
    assert metrics.push(uuid.UUID(int=1), sub, False, 0, b"", now_ms=0) == ErrorCode.INVALID_REQUEST
