"""The broker's effective configuration, and topic configs resolved against it.

Kafka resolves a topic config in three steps: the topic's own override, else the broker
setting that is its synonym (``retention.ms`` <- ``log.retention.ms`` <-
``log.retention.minutes`` <- ``log.retention.hours``), else the documented default.
This module owns that resolution so DescribeConfigs and the log agree on every value.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from moldau.config.definitions import (
    BROKER_CONFIGS,
    TOPIC_CONFIGS,
    ConfigDef,
    broker_definition,
    parse_settings,
)
from moldau.storage.config import LogConfig

log = logging.getLogger(__name__)

# Broker keys whose default is derived from a coarser-grained key.
_DERIVED: dict[str, tuple[tuple[str, int], ...]] = {
    "log.retention.ms": (("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000)),
    "log.roll.ms": (("log.roll.hours", 3_600_000),),
    "log.roll.jitter.ms": (("log.roll.jitter.hours", 3_600_000),),
    "log.flush.interval.ms": (("log.flush.scheduler.interval.ms", 1),),
}
#: the broker keys whose effective value may come from another key when they are unset
DERIVED_KEYS = frozenset(_DERIVED)


def read_properties(path: Path) -> dict[str, str]:
    """Read a Java-style ``server.properties`` file (``key=value`` or ``key: value``)."""
    result: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith(("#", "!")):
            continue
        sep = min((i for i in (text.find("="), text.find(":")) if i >= 0), default=-1)
        if sep < 0:
            raise ValueError(f"{path}:{lineno}: expected key=value, got {text!r}")
        result[text[:sep].strip()] = text[sep + 1 :].strip()
    return result


def _parse_dynamic(values: dict[str, str], strict: bool, scope: str) -> dict[str, object]:
    known = {k: v for k, v in values.items() if broker_definition(BROKER_CONFIGS, k) is not None}
    if strict:
        return parse_settings(BROKER_CONFIGS, known, "broker")
    parsed: dict[str, object] = {}
    for key, value in known.items():
        try:
            parsed.update(parse_settings(BROKER_CONFIGS, {key: value}, "broker"))
        except ValueError as exc:
            log.error("ignoring stored %s broker config %s=%r, using its default: %s", scope, key, value, exc)
    return parsed


class BrokerConfig:
    """Typed broker settings, with Kafka's defaults for everything not set.

    Layers, strongest first, as Kafka resolves them: dynamic settings for this broker,
    dynamic cluster-wide defaults (both changed at run time through AlterConfigs and
    kept in the metadata store), static settings (command line and properties file),
    and Kafka's documented defaults.
    """

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self._static: dict[str, object] = parse_settings(BROKER_CONFIGS, settings or {}, "broker")
        self._dynamic_default: dict[str, object] = {}
        self._dynamic_broker: dict[str, object] = {}
        self._set: dict[str, object] = dict(self._static)

    def set_dynamic(self, cluster_default: dict[str, str], this_broker: dict[str, str], strict: bool = True) -> None:
        """Replace the dynamic layers. Values are checked (errors name the key); keys
        Moldau does not know are kept in the store and have no effect, as Kafka keeps
        custom keys. Not ``strict`` (at start): a value that does not validate is
        refused with a logged error and the key's default used."""
        self._dynamic_default = _parse_dynamic(cluster_default, strict, "cluster-wide")
        self._dynamic_broker = _parse_dynamic(this_broker, strict, "per-broker")
        self._set = {**self._static, **self._dynamic_default, **self._dynamic_broker}

    def source_of(self, key: str) -> str:
        """Which layer supplies ``key``: dynamic_broker, dynamic_default, static or default."""
        if key in self._dynamic_broker:
            return "dynamic_broker"
        if key in self._dynamic_default:
            return "dynamic_default"
        if key in self._static:
            return "static"
        return "default"

    def layer_values(self, key: str) -> list[tuple[str, object]]:
        """(layer, value) for every layer that sets ``key``, strongest first."""
        layers = [("dynamic_broker", self._dynamic_broker), ("dynamic_default", self._dynamic_default),
                  ("static", self._static)]
        return [(name, values[key]) for name, values in layers if key in values]

    def __getitem__(self, key: str) -> object:
        if key in self._set:
            return self._set[key]
        for source, factor in _DERIVED.get(key, ()):
            if source in self._set and self._set[source] is not None:
                return int(self._set[source]) * factor  # type: ignore[call-overload]
        if key in _DERIVED:
            source, factor = _DERIVED[key][-1]
            default = BROKER_CONFIGS[source].default
            return None if default is None else int(default) * factor  # type: ignore[call-overload]
        return BROKER_CONFIGS[key].default

    def for_listener(self, listener: str, key: str, mechanism: str | None = None) -> object:
        """``key`` as it applies on ``listener``: Kafka's ``listener.name.<l>.<mech>.<key>``,
        then ``listener.name.<l>.<key>``, then the key itself."""
        prefix = f"listener.name.{listener.lower()}."
        candidates = [f"{prefix}{mechanism.lower()}.{key}"] if mechanism else []
        candidates.append(prefix + key)
        for candidate in candidates:
            if candidate in self._set:
                return self._set[candidate]
        return self[key]

    def int(self, key: str) -> int:
        value = self[key]
        assert isinstance(value, int)
        return value

    def bool(self, key: str) -> bool:
        return bool(self[key])

    def is_set(self, key: str) -> bool:
        return key in self._set

    def definitions(self) -> dict[str, ConfigDef]:
        return BROKER_CONFIGS

    # topic configs ------------------------------------------------------------------

    def topic_default(self, key: str) -> object:
        """What a topic gets for ``key`` when it has no override of its own."""
        definition = TOPIC_CONFIGS[key]
        if definition.synonym is not None:
            value = self[definition.synonym]
            if value is not None:
                if definition.synonym == "log.flush.interval.ms" and value >= 9223372036854775807:
                    return definition.default
                return value
        return definition.default

    def topic_default_is_from_broker(self, key: str) -> bool:
        definition = TOPIC_CONFIGS[key]
        if definition.synonym is None:
            return False
        keys = [definition.synonym, *(k for k, _ in _DERIVED.get(definition.synonym, ()))]
        return any(k in self._set for k in keys)

    def effective_topic_config(self, overrides: dict[str, str]) -> dict[str, str]:
        """Every topic config as text, overrides applied (the form LogConfig reads)."""
        result = {}
        for key, definition in TOPIC_CONFIGS.items():
            if key in overrides:
                result[key] = overrides[key]
            else:
                rendered = definition.render(self.topic_default(key))
                if rendered is not None:
                    result[key] = rendered
        return result


def validate_topic_configs(raw: dict[str, str | None]) -> dict[str, str]:
    """Check topic overrides, returning them in canonical text form; errors name the key."""
    canonical: dict[str, str] = {}
    for key, value in raw.items():
        definition = TOPIC_CONFIGS.get(key)
        if definition is None:
            raise ValueError(f"Unknown topic config name: {key}")
        if value is None:
            raise ValueError(f"Null value not supported for topic config {key}")
        rendered = definition.render(definition.parse(value))
        canonical[key] = rendered if rendered is not None else ""
    # The log's own checks too, before anything is stored: a value the definitions
    # take but the log refuses would be stored and then stop every start.
    LogConfig.from_properties(canonical)
    return canonical


_REPORTED: set[tuple[str, str, str]] = set()


@functools.lru_cache(maxsize=4096)
def _valid(items: tuple[tuple[str, str], ...]) -> bool:
    """Whether a set of overrides validates (cached: a topic's overrides are looked at on
    every apply and by every OffsetCommit's size check, and rarely change)."""
    try:
        validate_topic_configs(dict(items))
    except ValueError:
        return False
    return True


def usable_topic_configs(topic: str, overrides: dict[str, str]) -> dict[str, str]:
    """A topic's stored overrides less those that do not validate (today's rules may be
    stricter than the ones they were stored under): each is refused with a logged error
    and its default used, so that no stored config can stop the broker from starting."""
    if not overrides or _valid(tuple(overrides.items())):
        return overrides
    usable: dict[str, str] = {}
    for key, value in overrides.items():
        try:
            validate_topic_configs({key: value})
        except ValueError as exc:
            if (topic, key, value) not in _REPORTED:  # once, not at every look
                _REPORTED.add((topic, key, value))
                log.error("topic %s: ignoring stored config %s=%r, using its default: %s", topic, key, value, exc)
            continue
        usable[key] = value
    return usable
