"""Per-log configuration with Kafka's topic-level names and defaults.

:class:`LogConfig` is the storage layer's view of a topic's configuration. Field
names are the Kafka keys with ``.`` spelled ``_`` (``segment.bytes`` ->
``segment_bytes``) and the defaults are Kafka's, so that users' knowledge and tools
carry over. :meth:`LogConfig.from_properties` parses the string form that
``CreateTopics``/``AlterConfigs`` requests and ``kafka-configs.sh`` use.

Only keys the storage layer acts on live here; other topic keys
(``min.insync.replicas``, ``compression.type``, ...) belong to other layers and are
ignored by :meth:`LogConfig.from_properties`.

File format: none (configuration lives in the metadata store, not in log dirs).

Thread-safety: instances are frozen and therefore safe to share between threads; a
config change replaces the whole object (:attr:`moldau.storage.log.Log.config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["LONG_MAX", "LogConfig"]

#: Java's ``Long.MAX_VALUE``: Kafka's spelling of "never" for flush.* settings.
LONG_MAX = 2**63 - 1
_INT_MAX = 2**31 - 1

_TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")
_CLEANUP_POLICIES = ("compact", "delete")


def _parse_int(key: str, value: str, lo: int, hi: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError(f"Invalid value {value!r} for configuration {key}: not a number") from None
    if not lo <= number <= hi:
        raise ValueError(f"Invalid value {number} for configuration {key}: must be in [{lo}, {hi}]")
    return number


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The configuration of one log (one partition), Kafka topic names and defaults."""

    #: ``segment.bytes``: roll the active segment before it would exceed this size.
    segment_bytes: int = 1073741824
    #: ``segment.ms``: roll a non-empty segment once it is older than this.
    segment_ms: int = 604800000
    #: ``segment.index.bytes``: capacity of each ``.index``/``.timeindex``; full rolls.
    segment_index_bytes: int = 10485760
    #: ``index.interval.bytes``: bytes of log between two sparse index entries.
    index_interval_bytes: int = 4096
    #: ``max.message.bytes``: largest batch accepted (log overhead included).
    max_message_bytes: int = 1048588
    #: ``flush.messages``: fsync once this many messages are unflushed (default: never).
    flush_messages: int = LONG_MAX
    #: ``flush.ms``: fsync when the last flush is older than this (default: never).
    flush_ms: int = LONG_MAX
    #: ``message.timestamp.type``: ``CreateTime`` (producer's) or ``LogAppendTime`` (ours).
    message_timestamp_type: str = "CreateTime"
    #: ``retention.ms``: delete segments older than this; -1 keeps them forever.
    retention_ms: int = 604800000
    #: ``retention.bytes``: delete old segments past this total size; -1 means no limit.
    retention_bytes: int = -1
    #: ``cleanup.policy``: comma-separated subset of ``delete`` and ``compact``; empty
    #: means neither (records stay until DeleteRecords).
    cleanup_policy: str = "delete"
    #: ``delete.retention.ms``: how long a tombstone outlives its first cleaning.
    delete_retention_ms: int = 86400000
    #: ``min.compaction.lag.ms``: records younger than this are never compacted.
    min_compaction_lag_ms: int = 0
    #: ``max.compaction.lag.ms``: a dirty record older than this forces a cleaning.
    max_compaction_lag_ms: int = LONG_MAX
    #: ``min.cleanable.dirty.ratio``: dirty bytes / cleanable bytes that start a cleaning.
    min_cleanable_dirty_ratio: float = 0.5

    #: Kafka key -> field name.
    KAFKA_NAMES: ClassVar[Mapping[str, str]] = {
        "segment.bytes": "segment_bytes",
        "segment.ms": "segment_ms",
        "segment.index.bytes": "segment_index_bytes",
        "index.interval.bytes": "index_interval_bytes",
        "max.message.bytes": "max_message_bytes",
        "flush.messages": "flush_messages",
        "flush.ms": "flush_ms",
        "message.timestamp.type": "message_timestamp_type",
        "retention.ms": "retention_ms",
        "retention.bytes": "retention_bytes",
        "cleanup.policy": "cleanup_policy",
        "delete.retention.ms": "delete_retention_ms",
        "min.compaction.lag.ms": "min_compaction_lag_ms",
        "max.compaction.lag.ms": "max_compaction_lag_ms",
        "min.cleanable.dirty.ratio": "min_cleanable_dirty_ratio",
    }

    # Kafka's validators (ConfigDef ranges) for the numeric keys.
    _RANGES: ClassVar[Mapping[str, tuple[int, int]]] = {
        "segment.bytes": (14, _INT_MAX),
        "segment.ms": (1, LONG_MAX),
        "segment.index.bytes": (4, _INT_MAX),
        "index.interval.bytes": (0, _INT_MAX),
        "max.message.bytes": (0, _INT_MAX),
        "flush.messages": (1, LONG_MAX),
        "flush.ms": (0, LONG_MAX),
        "retention.ms": (-1, LONG_MAX),
        "retention.bytes": (-(2**63), LONG_MAX),
        "delete.retention.ms": (0, LONG_MAX),
        "min.compaction.lag.ms": (0, LONG_MAX),
        "max.compaction.lag.ms": (1, LONG_MAX),
    }

    def __post_init__(self) -> None:
        # Validate constructed values too, so a bad config fails where it is made,
        # not on the first append; messages name the Kafka key the user knows.
        for key, (lo, hi) in self._RANGES.items():
            value = getattr(self, self.KAFKA_NAMES[key])
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ValueError(
                    f"Invalid value {value!r} for configuration {key}: must be in [{lo}, {hi}]"
                )
        _check_timestamp_type("message.timestamp.type", self.message_timestamp_type)
        _check_cleanup_policy("cleanup.policy", self.cleanup_policy)
        _check_ratio("min.cleanable.dirty.ratio", self.min_cleanable_dirty_ratio)

    @classmethod
    def from_properties(cls, props: Mapping[str, str], base: LogConfig | None = None) -> LogConfig:
        """Parse Kafka-named string properties over ``base`` (defaults when None).

        Unknown keys are ignored: they configure other layers. Raises ValueError
        naming the offending key for a malformed or out-of-range value.
        """
        changes: dict[str, Any] = {}
        for key, raw in props.items():
            field = cls.KAFKA_NAMES.get(key)
            if field is None:
                continue
            parser = _PARSERS.get(key)
            if parser is not None:
                changes[field] = parser(key, raw)
            else:
                lo, hi = cls._RANGES[key]
                changes[field] = _parse_int(key, raw, lo, hi)
        return dataclasses.replace(base or cls(), **changes)

    def to_properties(self) -> dict[str, str]:
        """The Kafka-named string form, e.g. for DescribeConfigs."""
        return {key: str(getattr(self, field)) for key, field in self.KAFKA_NAMES.items()}

    @property
    def log_append_time(self) -> bool:
        """True when the broker stamps batches with its own clock."""
        return self.message_timestamp_type == "LogAppendTime"

    @property
    def compact(self) -> bool:
        """True when ``cleanup.policy`` includes ``compact``."""
        return "compact" in _policy_items(self.cleanup_policy)

    @property
    def delete(self) -> bool:
        """True when ``cleanup.policy`` includes ``delete``."""
        return "delete" in _policy_items(self.cleanup_policy)


def _policy_items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _check_timestamp_type(key: str, value: str) -> str:
    if value not in _TIMESTAMP_TYPES:
        raise ValueError(
            f"Invalid value {value!r} for configuration {key}: "
            f"must be one of {', '.join(_TIMESTAMP_TYPES)}"
        )
    return value


def _check_cleanup_policy(key: str, value: str) -> str:
    # Kafka's ValidList.in(compact, delete) takes an empty list: no retention by time
    # or size and no compaction (only DeleteRecords moves the start), as Kafka 4.2's
    # UnifiedLog.deleteOldSegments spells out.
    items = _policy_items(value)
    if any(item not in _CLEANUP_POLICIES for item in items):
        raise ValueError(
            f"Invalid value {value!r} for configuration {key}: "
            f"must be a list of {', '.join(_CLEANUP_POLICIES)}"
        )
    return ",".join(items)


def _check_ratio(key: str, value: object) -> float:
    # Kafka's range for min.cleanable.dirty.ratio is [0, 1].
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"Invalid value {value!r} for configuration {key}: must be in [0, 1]")
    return float(value)


def _parse_ratio(key: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"Invalid value {raw!r} for configuration {key}: not a number") from None
    return _check_ratio(key, value)


_PARSERS: Mapping[str, Callable[[str, str], Any]] = {
    "message.timestamp.type": lambda key, raw: _check_timestamp_type(key, raw.strip()),
    "cleanup.policy": lambda key, raw: _check_cleanup_policy(key, raw),
    "min.cleanable.dirty.ratio": _parse_ratio,
}
