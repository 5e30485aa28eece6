"""Client telemetry (KIP-714): the broker's side of GetTelemetrySubscriptions and
PushTelemetry, as Kafka's ClientMetricsManager answers with no subscription configured.

Theory of operation: a client asks for its subscription (GetTelemetrySubscriptions)
with its client instance id, or a zero id the first time, for which the broker makes
one. Each client instance is remembered (:class:`ClientInstance`, an LRU of at most
16,384 entries, each forgotten after three push intervals, as Kafka's cache) with the
subscription computed for it: Moldau has no ``CLIENT_METRICS`` resources, so every
subscription is the empty one -- no requested metrics, Kafka's default push interval
of five minutes -- and a client told to collect nothing pushes nothing; it asks again
after the interval. Requests are validated as Kafka does (a second request within the
interval is THROTTLING_QUOTA_EXCEEDED; a push with another subscription id is
UNKNOWN_SUBSCRIPTION_ID; an unsupported compression UNSUPPORTED_COMPRESSION_TYPE; a
payload over ``telemetry.max.bytes`` TELEMETRY_TOO_LARGE; anything after a terminating
push INVALID_REQUEST). Metrics a client pushes anyway are accepted and counted, not
kept: Kafka hands them to a receiver plugin, and Moldau has none.

Kafka with no receiver plugin configured leaves both APIs out of its ApiVersions
answer; Moldau advertises them and answers the empty subscription (see README).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import google_crc32c

from moldau.protocol.errors import ErrorCode

#: Kafka's ClientMetricsConfigs.DEFAULT_INTERVAL_MS
DEFAULT_PUSH_INTERVAL_MS = 300_000
#: Kafka's ClientMetricsManager: zstd, lz4, gzip, snappy (CompressionType ids)
ACCEPTED_COMPRESSION_TYPES = (4, 3, 1, 2)
#: none (0) is always accepted
_PUSHABLE_COMPRESSION = frozenset((0, *ACCEPTED_COMPRESSION_TYPES))
CACHE_MAX_SIZE = 16_384
CACHE_EXPIRY_MS = 3 * DEFAULT_PUSH_INTERVAL_MS
_RESERVED = (uuid.UUID(int=0), uuid.UUID(int=1))  # Kafka's Uuid.ZERO_UUID, METADATA_TOPIC_ID


@dataclass
class ClientInstance:
    """What the broker remembers of one client instance."""

    instance_id: uuid.UUID
    subscription_id: int
    push_interval_ms: int = DEFAULT_PUSH_INTERVAL_MS
    last_get_ms: int = 0
    last_push_ms: int = 0
    last_seen_ms: int = 0
    terminating: bool = False


def subscription_id(metrics: list[str], push_interval_ms: int, instance_id: uuid.UUID) -> int:
    """Kafka's id of a subscription: the CRC-32C of its metrics (as Java prints a set)
    and push interval, XORed with the Java hash code of the client instance id."""
    text = ("[" + ", ".join(metrics) + "]" + str(push_interval_ms)).encode()
    crc = google_crc32c.value(text)
    bits = instance_id.int
    mixed = (bits >> 64) ^ (bits & 0xFFFFFFFFFFFFFFFF)
    java_hash = ((mixed >> 32) ^ mixed) & 0xFFFFFFFF
    value = (crc ^ java_hash) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


class ClientMetrics:
    """The broker's client instances and the answers to their telemetry requests."""

    def __init__(self, telemetry_max_bytes: int) -> None:
        self.telemetry_max_bytes = telemetry_max_bytes
        self._instances: OrderedDict[uuid.UUID, ClientInstance] = OrderedDict()
        #: pushes accepted and bytes received (for metrics; nothing else is kept)
        self.pushes = 0
        self.pushed_bytes = 0

    def _instance(self, instance_id: uuid.UUID, now_ms: int) -> ClientInstance:
        instance = self._instances.get(instance_id)
        if instance is not None and now_ms - instance.last_seen_ms > max(CACHE_EXPIRY_MS, 3 * instance.push_interval_ms):
            instance = None  # expired: a new instance, as after Kafka's eviction
        if instance is None:
            instance = ClientInstance(instance_id, subscription_id([], DEFAULT_PUSH_INTERVAL_MS, instance_id))
            self._instances[instance_id] = instance
            while len(self._instances) > CACHE_MAX_SIZE:
                self._instances.popitem(last=False)
        self._instances.move_to_end(instance_id)
        instance.last_seen_ms = now_ms
        return instance

    def get_subscription(self, instance_id: uuid.UUID | None, now_ms: int | None = None) -> tuple[ErrorCode, ClientInstance]:
        """GetTelemetrySubscriptions: the error code and the client's instance."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if instance_id is None or instance_id == _RESERVED[0]:
            instance_id = uuid.uuid4()
            while instance_id in self._instances or instance_id in _RESERVED:
                instance_id = uuid.uuid4()
        instance = self._instance(instance_id, now_ms)
        last = max(instance.last_get_ms, instance.last_push_ms)
        if last and now_ms - last < instance.push_interval_ms:
            return ErrorCode.THROTTLING_QUOTA_EXCEEDED, instance
        instance.last_get_ms = now_ms
        return ErrorCode.NONE, instance

    def push(self, instance_id: uuid.UUID | None, subscription: int, terminating: bool, compression: int,
             metrics: bytes | None, now_ms: int | None = None) -> ErrorCode:
        """PushTelemetry: the error code Kafka's ClientMetricsManager answers."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if instance_id is None or instance_id in _RESERVED:
            return ErrorCode.INVALID_REQUEST
        instance = self._instance(instance_id, now_ms)
        try:
            if instance.terminating:
                return ErrorCode.INVALID_REQUEST
            # a push right after a get is accepted whenever it comes (clients add jitter)
            if instance.last_get_ms > instance.last_push_ms or now_ms - instance.last_push_ms >= instance.push_interval_ms:
                instance.last_push_ms = now_ms
            elif not terminating:
                return ErrorCode.THROTTLING_QUOTA_EXCEEDED
            if subscription != instance.subscription_id:
                return ErrorCode.UNKNOWN_SUBSCRIPTION_ID
            if compression not in _PUSHABLE_COMPRESSION:
                return ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
            if metrics is not None and len(metrics) > self.telemetry_max_bytes:
                return ErrorCode.TELEMETRY_TOO_LARGE
        finally:
            instance.terminating = terminating
        if metrics:
            self.pushes += 1
            self.pushed_bytes += len(metrics)
        return ErrorCode.NONE
