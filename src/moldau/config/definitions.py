"""Broker and topic configuration keys, with Kafka's names, types and defaults.

Users bring their Kafka knowledge and tools: every key here is spelled as Apache Kafka
documents it, with Kafka's default, so that ``--set``, ``server.properties`` files,
DescribeConfigs and the admin clients all speak the same language. Each topic config
names the broker config that supplies its default (its synonym), as DescribeConfigs
reports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

LONG_MAX = 9223372036854775807
INT_MAX = 2147483647


class ConfigType:
    BOOLEAN = "BOOLEAN"
    STRING = "STRING"
    INT = "INT"
    SHORT = "SHORT"
    LONG = "LONG"
    DOUBLE = "DOUBLE"
    LIST = "LIST"
    CLASS = "CLASS"
    PASSWORD = "PASSWORD"


# DescribeConfigs wire codes for config types (KIP-569).
CONFIG_TYPE_CODES = {
    ConfigType.BOOLEAN: 1,
    ConfigType.STRING: 2,
    ConfigType.INT: 3,
    ConfigType.SHORT: 4,
    ConfigType.LONG: 5,
    ConfigType.DOUBLE: 6,
    ConfigType.LIST: 7,
    ConfigType.CLASS: 8,
    ConfigType.PASSWORD: 9,
}


@dataclass(frozen=True)
class ConfigDef:
    """One configuration key: its type, Kafka default, and how to check a value."""

    name: str
    type: str
    default: object
    doc: str = ""
    min_value: float | None = None
    choices: tuple[str, ...] | None = None
    synonym: str | None = None  # for topic configs: the broker key giving the default
    read_only: bool = False
    sensitive: bool = False

    def parse(self, raw: object) -> object:
        """Turn a value given as text (or already typed) into its typed form."""
        value = raw.strip() if isinstance(raw, str) else raw
        try:
            parsed = _PARSERS[self.type](value)
        except (TypeError, ValueError):
            raise ValueError(
                f"Invalid value {raw!r} for configuration {self.name}: expected {self.type.lower()}"
            ) from None
        if self.min_value is not None and isinstance(parsed, int | float) and parsed < self.min_value:
            raise ValueError(
                f"Invalid value {raw!r} for configuration {self.name}: must be at least {self.min_value:g}"
            )
        if self.choices is not None:
            items = parsed if isinstance(parsed, list) else [parsed]
            for item in items:
                if item not in self.choices:
                    raise ValueError(
                        f"Invalid value {raw!r} for configuration {self.name}: "
                        f"must be one of {', '.join(self.choices)}"
                    )
        return parsed

    def render(self, value: object) -> str | None:
        """The text form DescribeConfigs reports."""
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(value)


def _parse_int(bits: int) -> Callable[[object], int]:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(value)
        number = int(value)  # type: ignore[call-overload]
        if not low <= number <= high:
            raise ValueError(value)
        return number

    return parse


def _parse_list(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip()
    return [part.strip() for part in text.split(",") if part.strip()] if text else []


def _parse_string(value: object) -> str | None:
    return None if value is None else str(value)


_PARSERS: dict[str, Callable[[object], object]] = {
    ConfigType.BOOLEAN: _parse_bool,
    ConfigType.STRING: _parse_string,
    ConfigType.PASSWORD: _parse_string,
    ConfigType.CLASS: _parse_string,
    ConfigType.INT: _parse_int(32),
    ConfigType.SHORT: _parse_int(16),
    ConfigType.LONG: _parse_int(64),
    ConfigType.DOUBLE: lambda v: float(v),  # type: ignore[arg-type]
    ConfigType.LIST: _parse_list,
}

_T = ConfigType
COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")
CLEANUP_POLICIES = ("delete", "compact")

TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
#: Listeners, TLS and SASL (docs/11-security.md). Any of the ssl.* and sasl.* keys may
#: also be given per listener, ``listener.name.<listener>.<key>`` (lower-case name), and
#: a JAAS config per mechanism, ``listener.name.<listener>.<mechanism>.sasl.jaas.config``.
SECURITY_CONFIGS = [
    ConfigDef("listener.security.protocol.map", _T.STRING,
              "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", read_only=True),
    ConfigDef("inter.broker.listener.name", _T.STRING, None, read_only=True),
    ConfigDef("security.inter.broker.protocol", _T.STRING, "PLAINTEXT",
              choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"), read_only=True),
    ConfigDef("ssl.keystore.type", _T.STRING, "PEM", choices=("PEM",), read_only=True),
    ConfigDef("ssl.keystore.location", _T.STRING, None, read_only=True),
    ConfigDef("ssl.keystore.password", _T.PASSWORD, None, read_only=True, sensitive=True),
    ConfigDef("ssl.keystore.certificate.chain", _T.PASSWORD, None, read_only=True, sensitive=True),
    ConfigDef("ssl.keystore.key", _T.PASSWORD, None, read_only=True, sensitive=True),
    ConfigDef("ssl.key.password", _T.PASSWORD, None, read_only=True, sensitive=True),
    ConfigDef("ssl.truststore.type", _T.STRING, "PEM", choices=("PEM",), read_only=True),
    ConfigDef("ssl.truststore.location", _T.STRING, None, read_only=True),
    ConfigDef("ssl.truststore.password", _T.PASSWORD, None, read_only=True, sensitive=True),
    ConfigDef("ssl.truststore.certificates", _T.PASSWORD, None, read_only=True, sensitive=True),
    ConfigDef("ssl.client.auth", _T.STRING, "none", choices=("none", "requested", "required"),
              read_only=True),
    ConfigDef("ssl.enabled.protocols", _T.LIST, list(TLS_PROTOCOLS), choices=TLS_PROTOCOLS, read_only=True),
    ConfigDef("ssl.protocol", _T.STRING, "TLSv1.3", read_only=True),
    ConfigDef("ssl.cipher.suites", _T.LIST, [], read_only=True),
    ConfigDef("ssl.principal.mapping.rules", _T.STRING, "DEFAULT", read_only=True),
    ConfigDef("ssl.endpoint.identification.algorithm", _T.STRING, "https", read_only=True),
    ConfigDef("sasl.enabled.mechanisms", _T.LIST, ["GSSAPI"], read_only=True),
    ConfigDef("sasl.mechanism.inter.broker.protocol", _T.STRING, "GSSAPI", read_only=True),
    ConfigDef("sasl.jaas.config", _T.PASSWORD, None, read_only=True, sensitive=True),
    ConfigDef("sasl.server.max.receive.size", _T.INT, 524288, min_value=1, read_only=True),
    ConfigDef("connections.max.reauth.ms", _T.LONG, 0, min_value=0, read_only=True),
    ConfigDef("sasl.oauthbearer.jwks.endpoint.url", _T.STRING, None, read_only=True),
    ConfigDef("sasl.oauthbearer.jwks.endpoint.refresh.ms", _T.LONG, 3_600_000, min_value=1, read_only=True),
    ConfigDef("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", _T.LONG, 100, min_value=0, read_only=True),
    ConfigDef("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", _T.LONG, 10_000, min_value=0, read_only=True),
    ConfigDef("sasl.oauthbearer.expected.audience", _T.LIST, [], read_only=True),
    ConfigDef("sasl.oauthbearer.expected.issuer", _T.STRING, None, read_only=True),
    ConfigDef("sasl.oauthbearer.sub.claim.name", _T.STRING, "sub", read_only=True),
    ConfigDef("sasl.oauthbearer.scope.claim.name", _T.STRING, "scope", read_only=True),
    ConfigDef("sasl.oauthbearer.clock.skew.seconds", _T.INT, 30, min_value=0, read_only=True),
]

BROKER_CONFIGS: dict[str, ConfigDef] = {
    d.name: d
    for d in [
        ConfigDef("node.id", _T.INT, 0, "The broker's id in the cluster.", read_only=True),
        ConfigDef("broker.id", _T.INT, 0, "Alias of node.id.", read_only=True),
        ConfigDef("broker.rack", _T.STRING, None, "The broker's rack, for replica placement.", read_only=True),
        ConfigDef("broker.session.timeout.ms", _T.INT, 9000,
                  "How long a cluster broker stays registered without renewing its session.",
                  min_value=1000, read_only=True),
        ConfigDef("broker.heartbeat.interval.ms", _T.INT, 2000, read_only=True),
        ConfigDef("moldau.broker.refused.probe.enable", _T.BOOLEAN, True,
                  "End the session of a broker whose endpoint refuses connections (its process is gone) "
                  "instead of waiting for broker.session.timeout.ms.", read_only=True),
        ConfigDef("controlled.shutdown.enable", _T.BOOLEAN, True,
                  "On SIGTERM, hand partition leadership to other in-sync replicas before stopping.",
                  read_only=True),
        ConfigDef("controlled.shutdown.max.retries", _T.INT, 3, min_value=0, read_only=True),
        ConfigDef("controlled.shutdown.retry.backoff.ms", _T.LONG, 5000, min_value=0, read_only=True),
        ConfigDef("replica.high.watermark.checkpoint.interval.ms", _T.LONG, 5000, min_value=1,
                  read_only=True),
        ConfigDef("log.dirs", _T.STRING, None, "Where partition data lives.", read_only=True),
        ConfigDef("log.dir", _T.STRING, "./moldau-data", "Where partition data lives.", read_only=True),
        ConfigDef("listeners", _T.STRING, "PLAINTEXT://127.0.0.1:9092", read_only=True),
        ConfigDef("advertised.listeners", _T.STRING, None, read_only=True),
        *SECURITY_CONFIGS,
        ConfigDef("num.partitions", _T.INT, 1, "Partitions of auto-created topics.", min_value=1),
        ConfigDef("default.replication.factor", _T.INT, 1, min_value=1),
        ConfigDef("auto.create.topics.enable", _T.BOOLEAN, True, read_only=True),
        ConfigDef("delete.topic.enable", _T.BOOLEAN, True, read_only=True),
        ConfigDef("message.max.bytes", _T.INT, 1048588, "Largest record batch.", min_value=0),
        ConfigDef("socket.request.max.bytes", _T.INT, 104857600, "Largest request.", min_value=1),
        ConfigDef("socket.send.buffer.bytes", _T.INT, 102400, read_only=True),
        ConfigDef("socket.receive.buffer.bytes", _T.INT, 102400, read_only=True),
        ConfigDef("queued.max.requests", _T.INT, 500, min_value=1, read_only=True),
        # Kafka's default is -1 (unbounded); Moldau bounds the request bytes it holds by
        # default (twice socket.request.max.bytes), so no set of clients can exhaust memory
        ConfigDef(
            "queued.max.request.bytes",
            _T.LONG,
            209715200,
            "Request bytes held in memory at once, all connections together (<= 0: unbounded).",
            read_only=True,
        ),
        ConfigDef("num.network.threads", _T.INT, 3, min_value=1),
        ConfigDef("num.io.threads", _T.INT, 8, min_value=1, read_only=True),
        ConfigDef("log.segment.bytes", _T.INT, 1073741824, min_value=14),
        ConfigDef("log.roll.ms", _T.LONG, None, min_value=1),
        ConfigDef("log.roll.hours", _T.INT, 168, min_value=1, read_only=True),
        ConfigDef("log.roll.jitter.ms", _T.LONG, None, min_value=0),
        ConfigDef("log.roll.jitter.hours", _T.INT, 0, min_value=0, read_only=True),
        ConfigDef("log.index.interval.bytes", _T.INT, 4096, min_value=0),
        ConfigDef("log.index.size.max.bytes", _T.INT, 10485760, min_value=4),
        ConfigDef("log.flush.interval.messages", _T.LONG, LONG_MAX, min_value=1),
        ConfigDef("log.flush.interval.ms", _T.LONG, None, min_value=0),
        ConfigDef("log.flush.scheduler.interval.ms", _T.LONG, LONG_MAX, read_only=True),
        ConfigDef("log.flush.offset.checkpoint.interval.ms", _T.INT, 60000, min_value=0, read_only=True),
        ConfigDef("log.flush.start.offset.checkpoint.interval.ms", _T.INT, 60000, min_value=0, read_only=True),
        ConfigDef("log.retention.hours", _T.INT, 168, read_only=True),
        ConfigDef("log.retention.minutes", _T.INT, None, read_only=True),
        ConfigDef("log.retention.ms", _T.LONG, None),
        ConfigDef("log.retention.bytes", _T.LONG, -1),
        ConfigDef("log.retention.check.interval.ms", _T.LONG, 300000, min_value=1, read_only=True),
        ConfigDef("log.cleanup.policy", _T.LIST, ["delete"], choices=CLEANUP_POLICIES),
        ConfigDef("log.cleaner.enable", _T.BOOLEAN, True, read_only=True),
        ConfigDef("log.cleaner.threads", _T.INT, 1, min_value=0),
        ConfigDef("log.cleaner.delete.retention.ms", _T.LONG, 86400000, min_value=0),
        ConfigDef("log.cleaner.min.compaction.lag.ms", _T.LONG, 0, min_value=0),
        ConfigDef("log.cleaner.max.compaction.lag.ms", _T.LONG, LONG_MAX, min_value=1),
        ConfigDef("log.cleaner.min.cleanable.ratio", _T.DOUBLE, 0.5, min_value=0),
        ConfigDef("log.cleaner.backoff.ms", _T.LONG, 15000, min_value=0),
        ConfigDef("log.cleaner.dedupe.buffer.size", _T.LONG, 134217728, read_only=True),
        ConfigDef("log.cleaner.io.buffer.size", _T.INT, 524288, min_value=0, read_only=True),
        ConfigDef("log.cleaner.io.buffer.load.factor", _T.DOUBLE, 0.9, read_only=True),
        ConfigDef("log.segment.delete.delay.ms", _T.LONG, 60000, min_value=0),
        ConfigDef("log.message.timestamp.type", _T.STRING, "CreateTime", choices=TIMESTAMP_TYPES),
        ConfigDef("log.message.timestamp.before.max.ms", _T.LONG, LONG_MAX, min_value=0),
        ConfigDef("log.message.timestamp.after.max.ms", _T.LONG, 3600000, min_value=0),
        ConfigDef("log.preallocate", _T.BOOLEAN, False),
        ConfigDef("compression.type", _T.STRING, "producer", choices=COMPRESSION_TYPES),
        ConfigDef("min.insync.replicas", _T.INT, 1, min_value=1),
        ConfigDef("unclean.leader.election.enable", _T.BOOLEAN, False),
        ConfigDef("auto.leader.rebalance.enable", _T.BOOLEAN, True,
                  "The controller moves leadership back to preferred replicas.", read_only=True),
        ConfigDef("leader.imbalance.check.interval.seconds", _T.LONG, 300, min_value=1, read_only=True),
        ConfigDef("leader.imbalance.per.broker.percentage", _T.INT, 10, min_value=0, read_only=True),
        ConfigDef("replica.lag.time.max.ms", _T.LONG, 30000, read_only=True),
        ConfigDef("replica.fetch.max.bytes", _T.INT, 1048576, read_only=True),
        ConfigDef("replica.fetch.wait.max.ms", _T.INT, 500, min_value=0, read_only=True),
        ConfigDef("replica.fetch.backoff.ms", _T.INT, 1000, min_value=0, read_only=True),
        ConfigDef("fetch.max.bytes", _T.INT, 57671680, min_value=1024, read_only=True),
        ConfigDef("max.incremental.fetch.session.cache.slots", _T.INT, 1000, min_value=0, read_only=True),
        ConfigDef("max.request.partition.size.limit", _T.INT, 2000, min_value=1, read_only=True),
        ConfigDef("telemetry.max.bytes", _T.INT, 1048576, min_value=1, read_only=True),
        ConfigDef("moldau.client.telemetry.enable", _T.BOOLEAN, False,
                  "Serve KIP-714 client telemetry (GetTelemetrySubscriptions, PushTelemetry). Off, as "
                  "a Kafka broker without a client-telemetry metrics reporter: not advertised.",
                  read_only=True),
        ConfigDef("offsets.topic.num.partitions", _T.INT, 50, min_value=1, read_only=True),
        ConfigDef("offsets.topic.replication.factor", _T.SHORT, 1, min_value=1, read_only=True),
        ConfigDef("offsets.topic.segment.bytes", _T.INT, 104857600, min_value=1, read_only=True),
        ConfigDef("offsets.retention.minutes", _T.INT, 10080, min_value=1, read_only=True),
        ConfigDef("offsets.retention.check.interval.ms", _T.LONG, 600000, min_value=1, read_only=True),
        ConfigDef("offsets.commit.timeout.ms", _T.INT, 5000, min_value=1, read_only=True),
        ConfigDef("offset.metadata.max.bytes", _T.INT, 4096, read_only=True),
        ConfigDef("group.initial.rebalance.delay.ms", _T.INT, 3000, min_value=0, read_only=True),
        ConfigDef("group.min.session.timeout.ms", _T.INT, 6000, read_only=True),
        ConfigDef("group.max.session.timeout.ms", _T.INT, 1800000, read_only=True),
        ConfigDef("group.max.size", _T.INT, INT_MAX, min_value=1, read_only=True),
        ConfigDef("group.consumer.heartbeat.interval.ms", _T.INT, 5000, min_value=1, read_only=True),
        ConfigDef("group.consumer.session.timeout.ms", _T.INT, 45000, min_value=1, read_only=True),
        ConfigDef("group.consumer.assignors", _T.LIST, ["uniform", "range"], read_only=True),
        ConfigDef("group.consumer.max.size", _T.INT, INT_MAX, min_value=1, read_only=True),
        ConfigDef("group.consumer.migration.policy", _T.STRING, "bidirectional",
                  choices=("disabled", "upgrade", "downgrade", "bidirectional"), read_only=True),
        # KIP-932 share groups (Kafka's ShareGroupConfig / GroupCoordinatorConfig names)
        ConfigDef("group.share.enable", _T.BOOLEAN, True, read_only=True),
        ConfigDef("group.share.heartbeat.interval.ms", _T.INT, 5000, min_value=1, read_only=True),
        ConfigDef("group.share.session.timeout.ms", _T.INT, 45000, min_value=1, read_only=True),
        ConfigDef("group.share.record.lock.duration.ms", _T.INT, 30000, min_value=1000, read_only=True),
        ConfigDef("group.share.delivery.count.limit", _T.INT, 5, min_value=2, read_only=True),
        ConfigDef("group.share.partition.max.record.locks", _T.INT, 2000, min_value=100, read_only=True),
        ConfigDef("group.share.max.size", _T.INT, 200, min_value=1, read_only=True),
        ConfigDef("share.coordinator.state.topic.num.partitions", _T.INT, 50, min_value=1, read_only=True),
        ConfigDef("share.coordinator.state.topic.replication.factor", _T.SHORT, 3, min_value=1, read_only=True),
        ConfigDef("transaction.state.log.num.partitions", _T.INT, 50, min_value=1, read_only=True),
        ConfigDef("transaction.state.log.replication.factor", _T.SHORT, 1, min_value=1, read_only=True),
        ConfigDef("transaction.max.timeout.ms", _T.INT, 900000, min_value=1, read_only=True),
        ConfigDef("transactional.id.expiration.ms", _T.INT, 604800000, min_value=1, read_only=True),
        ConfigDef("transaction.state.log.min.isr", _T.INT, 2, min_value=1, read_only=True),
        ConfigDef("transaction.state.log.segment.bytes", _T.INT, 104857600, min_value=1, read_only=True),
        # KIP-890 part 1: a partition leader verifies a transactional producer's first
        # batch with the coordinator (dynamic in Kafka, cluster-wide)
        ConfigDef("transaction.partition.verification.enable", _T.BOOLEAN, True),
        ConfigDef(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms", _T.INT, 10000, min_value=1, read_only=True
        ),
        ConfigDef(
            "transaction.remove.expired.transaction.cleanup.interval.ms", _T.INT, 3600000, min_value=1, read_only=True
        ),
        ConfigDef("max.connections", _T.INT, INT_MAX, min_value=0),
        ConfigDef("max.connection.creation.rate", _T.INT, INT_MAX, min_value=0),
        ConfigDef("authorizer.class.name", _T.STRING, "", read_only=True),
        ConfigDef("super.users", _T.STRING, "", read_only=True),
        ConfigDef("allow.everyone.if.no.acl.found", _T.BOOLEAN, False, read_only=True),
        ConfigDef("quota.window.num", _T.INT, 11, min_value=1, read_only=True),
        ConfigDef("quota.window.size.seconds", _T.INT, 1, min_value=1, read_only=True),
        ConfigDef("max.connections.per.ip", _T.INT, INT_MAX, min_value=0),
        ConfigDef("max.connections.per.ip.overrides", _T.STRING, ""),
        ConfigDef("connections.max.idle.ms", _T.LONG, 600000, read_only=True),
        ConfigDef("request.timeout.ms", _T.INT, 30000, read_only=True),
        ConfigDef("producer.id.expiration.ms", _T.INT, 86400000, min_value=1, read_only=True),
        ConfigDef("producer.id.expiration.check.interval.ms", _T.INT, 600000, min_value=1, read_only=True),
        ConfigDef("moldau.max.open.files", _T.INT, 1000, "Open segment files kept at once.", min_value=16),
        # the HTTP listener (metrics, health, console; docs/15-observability.md) and the
        # log line format: Moldau's own, Kafka has neither
        ConfigDef("moldau.http.listener", _T.STRING, None,
                  "HOST:PORT of the HTTP listener for /metrics, /healthz, /readyz (off when unset).",
                  read_only=True),
        ConfigDef("moldau.http.max.connections", _T.INT, 64, "HTTP connections open at once.",
                  min_value=1, read_only=True),
        ConfigDef("moldau.http.idle.timeout.ms", _T.INT, 10000,
                  "Longest an HTTP client may keep the server waiting (headers, reading its answer, idle).",
                  min_value=100, read_only=True),
        ConfigDef("moldau.http.max.body.bytes", _T.INT, 1048576, "Largest HTTP request body.",
                  min_value=0, read_only=True),
        ConfigDef("moldau.metrics.enable", _T.BOOLEAN, True,
                  "Count requests, messages and bytes for /metrics (off: the counters cost nothing).",
                  read_only=True),
        ConfigDef("moldau.log.format", _T.STRING, "text", "Log lines as text or as one JSON object each.",
                  choices=("text", "json"), read_only=True),
        # Kafka has no per-broker partition limit (KIP-578's max.broker.partitions was never
        # implemented). Every hosted partition costs a directory, a Log and a Partition, and
        # every topic change rewrites the whole metadata store, so a Python broker bounds
        # them; CreateTopics, CreatePartitions and auto-creation past it get POLICY_VIOLATION.
        ConfigDef(
            "moldau.max.broker.partitions", _T.INT, 10000,
            "Most partitions this broker hosts; creations past it are refused.", min_value=1,
        ),
    ]
}

TOPIC_CONFIGS: dict[str, ConfigDef] = {
    d.name: d
    for d in [
        ConfigDef("cleanup.policy", _T.LIST, ["delete"], choices=CLEANUP_POLICIES, synonym="log.cleanup.policy"),
        ConfigDef("compression.type", _T.STRING, "producer", choices=COMPRESSION_TYPES, synonym="compression.type"),
        ConfigDef("delete.retention.ms", _T.LONG, 86400000, min_value=0, synonym="log.cleaner.delete.retention.ms"),
        ConfigDef("file.delete.delay.ms", _T.LONG, 60000, min_value=0, synonym="log.segment.delete.delay.ms"),
        ConfigDef("flush.messages", _T.LONG, LONG_MAX, min_value=1, synonym="log.flush.interval.messages"),
        ConfigDef("flush.ms", _T.LONG, LONG_MAX, min_value=0, synonym="log.flush.interval.ms"),
        ConfigDef("follower.replication.throttled.replicas", _T.LIST, []),
        ConfigDef("index.interval.bytes", _T.INT, 4096, min_value=0, synonym="log.index.interval.bytes"),
        ConfigDef("leader.replication.throttled.replicas", _T.LIST, []),
        ConfigDef("local.retention.bytes", _T.LONG, -2, min_value=-2),
        ConfigDef("local.retention.ms", _T.LONG, -2, min_value=-2),
        ConfigDef("max.compaction.lag.ms", _T.LONG, LONG_MAX, min_value=1, synonym="log.cleaner.max.compaction.lag.ms"),
        ConfigDef("max.message.bytes", _T.INT, 1048588, min_value=0, synonym="message.max.bytes"),
        ConfigDef("message.timestamp.after.max.ms", _T.LONG, 3600000, min_value=0, synonym="log.message.timestamp.after.max.ms"),
        ConfigDef("message.timestamp.before.max.ms", _T.LONG, LONG_MAX, min_value=0, synonym="log.message.timestamp.before.max.ms"),
        ConfigDef("message.timestamp.type", _T.STRING, "CreateTime", choices=TIMESTAMP_TYPES, synonym="log.message.timestamp.type"),
        ConfigDef("min.cleanable.dirty.ratio", _T.DOUBLE, 0.5, min_value=0, synonym="log.cleaner.min.cleanable.ratio"),
        ConfigDef("min.compaction.lag.ms", _T.LONG, 0, min_value=0, synonym="log.cleaner.min.compaction.lag.ms"),
        ConfigDef("min.insync.replicas", _T.INT, 1, min_value=1, synonym="min.insync.replicas"),
        ConfigDef("preallocate", _T.BOOLEAN, False, synonym="log.preallocate"),
        ConfigDef("remote.storage.enable", _T.BOOLEAN, False),
        ConfigDef("retention.bytes", _T.LONG, -1, synonym="log.retention.bytes"),
        ConfigDef("retention.ms", _T.LONG, 604800000, min_value=-1, synonym="log.retention.ms"),
        ConfigDef("segment.bytes", _T.INT, 1073741824, min_value=14, synonym="log.segment.bytes"),
        ConfigDef("segment.index.bytes", _T.INT, 10485760, min_value=4, synonym="log.index.size.max.bytes"),
        ConfigDef("segment.jitter.ms", _T.LONG, 0, min_value=0, synonym="log.roll.jitter.ms"),
        ConfigDef("segment.ms", _T.LONG, 604800000, min_value=1, synonym="log.roll.ms"),
        ConfigDef("unclean.leader.election.enable", _T.BOOLEAN, False, synonym="unclean.leader.election.enable"),
    ]
}


def parse_settings(defs: dict[str, ConfigDef], raw: dict[str, str], what: str) -> dict[str, object]:
    """Check and type a set of ``key=value`` settings; errors name the key."""
    parsed: dict[str, object] = {}
    for key, value in raw.items():
        if key.startswith(LISTENER_PREFIX) and what == "broker":
            parsed[key] = _listener_setting(defs, key, value)
            continue
        definition = defs.get(key)
        if definition is None:
            raise ValueError(f"Unknown {what} configuration {key!r}")
        parsed[key] = definition.parse(value)
    return parsed


LISTENER_PREFIX = "listener.name."

#: Kafka's per-broker dynamic configs (DynamicBrokerConfig.PerBrokerConfigs: the SSL
#: and listener reconfigurables less the cluster-level connection limits). Kafka refuses
#: them at the cluster-default scope ("broker id must be specified"); Moldau keeps the
#: ones it does not use as Kafka keeps any other key it does not know.
KAFKA_PER_BROKER_CONFIGS = frozenset({
    "advertised.listeners", "listeners", "listener.security.protocol.map", "principal.builder.class",
    "ssl.protocol", "ssl.provider", "ssl.cipher.suites", "ssl.enabled.protocols", "ssl.keystore.type",
    "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password", "ssl.truststore.type",
    "ssl.truststore.location", "ssl.truststore.password", "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm", "ssl.endpoint.identification.algorithm",
    "ssl.secure.random.implementation", "ssl.client.auth", "ssl.engine.factory.class",
    "sasl.mechanism.inter.broker.protocol", "sasl.jaas.config", "sasl.enabled.mechanisms",
    "sasl.kerberos.service.name", "sasl.kerberos.kinit.cmd", "sasl.kerberos.ticket.renew.window.factor",
    "sasl.kerberos.ticket.renew.jitter", "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal.to.local.rules", "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter", "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.buffer.seconds",
})


def broker_definition(defs: dict[str, ConfigDef], key: str) -> ConfigDef | None:
    """The definition a broker key is checked against: its own, or for a listener
    override (``listener.name.<l>[.<mechanism>].<key>``) its base key's; None for a
    key Moldau does not know."""
    if not key.startswith(LISTENER_PREFIX):
        return defs.get(key)
    name, _, rest = key[len(LISTENER_PREFIX) :].partition(".")
    if not name or not rest:
        return None
    if rest not in defs:
        rest = rest.partition(".")[2]
    definition = defs.get(rest)
    if definition is None or not rest.startswith(("ssl.", "sasl.", "connections.max.reauth")):
        return None
    return definition


def _listener_setting(defs: dict[str, ConfigDef], key: str, value: str) -> object:
    """A per-listener override, ``listener.name.<l>.<key>`` or, for JAAS configs,
    ``listener.name.<l>.<mechanism>.sasl.jaas.config``: checked as ``<key>`` is."""
    name, _, rest = key[len(LISTENER_PREFIX) :].partition(".")
    if not name or not rest:
        raise ValueError(f"Unknown broker configuration {key!r}")
    if rest not in defs:
        _mechanism, _, rest = rest.partition(".")
    definition = defs.get(rest)
    if definition is None or not (rest.startswith(("ssl.", "sasl.", "connections.max.reauth",
                                                   "max.connection.creation.rate"))
                                  or rest == "max.connections"):
        raise ValueError(f"Unknown broker configuration {key!r}")
    return definition.parse(value)
