"""Client quotas: byte rates and request time per user and client id, as Kafka keeps them.

Entities. A quota is set on an *entity*: a user, a client id, or a user and a client id
together, where either name may be the *default* (``None``: every user, every client
id without a quota of its own). A connection's quota of one kind (``producer_byte_rate``,
``consumer_byte_rate``, ``request_percentage``) is found in Kafka's order of precedence,
the first entity that has that kind winning:

  1. user + client-id          5. default user + default client-id
  2. user + default client-id  6. default user
  3. user                      7. client-id
  4. default user + client-id  8. default client-id

Usage is counted per matched entity with the names it was matched by (all clients of a
user share a user quota; each client id has its own under a default client-id quota),
as Kafka's quota metric tags do.

Throttling, as Kafka's ClientQuotaManager does it: each sensor is a
:class:`~moldau.security.sampled_rate.SampledRate` of ``quota.window.num`` samples of
``quota.window.size.seconds``; a request's bytes (or handler time) are recorded, and if
the measured rate is then over the quota the answer carries
``throttle_time_ms = (rate - quota) / quota * window_size`` and the connection is muted
for that time. An idle client may therefore burst about ``(quota.window.num - 1)``
windows' worth before it is throttled, and its rate converges to the quota over the
window. Byte-rate throttle times are not capped (Kafka's are not); request-time ones
are capped at one window, as Kafka's ClientRequestQuotaManager caps them.

The ``ip`` entity (alone, a given address or the default) carries only
``connection_creation_rate``: it is enforced where connections are accepted
(:mod:`moldau.server.limits`), not per request.

Stored in the metadata store under the kind ``"quotas"``: key the entity (JSON list of
``[type, name]``), value the quotas (JSON object), so every broker of a cluster
applies the same ones; each broker counts its own traffic, as in Kafka.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from typing import Any

from moldau.security.principal import KafkaPrincipal
from moldau.security.sampled_rate import SampledRate

QUOTA_KIND = "quotas"
USER = "user"
CLIENT_ID = "client-id"
IP = "ip"
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONNECTION_CREATION_RATE = "connection_creation_rate"
QUOTA_KEYS = frozenset({PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE})
#: the keys an ``ip`` entity takes (Kafka's QuotaConfig.ipConfigs: an INT)
IP_QUOTA_KEYS = frozenset({CONNECTION_CREATION_RATE})
#: what a throttle time can say (a quota of 0 would be an infinite one)
MAX_THROTTLE_MS = 2**31 - 1
#: a connection_creation_rate of this value is no quota (Kafka's IP_CONNECTION_RATE_DEFAULT)
NO_IP_QUOTA = 2**31 - 1
#: IP sensors idle this long are forgotten (Kafka expires them after an hour)
IP_SENSOR_EXPIRY_S = 3600.0

Entity = tuple[tuple[str, str | None], ...]
"""Sorted (entity type, name or None for the default) pairs."""


def entity_key(entity: Entity) -> str:
    return json.dumps([list(pair) for pair in sorted(entity)], separators=(",", ":"))


def entity_from_key(key: str) -> Entity:
    return tuple(sorted((str(kind), name) for kind, name in json.loads(key)))


def normalize_ip(name: str | None) -> str | None:
    """An ip entity's name as the broker sees peers' addresses (``::0:1`` is ``::1``);
    None (the default entity) and names that are no address are kept as they are."""
    if name is None:
        return None
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def _candidates(user: str, client_id: str) -> list[Entity]:
    """Kafka's precedence, most specific first (see the module docstring)."""
    return [
        ((CLIENT_ID, client_id), (USER, user)),
        ((CLIENT_ID, None), (USER, user)),
        ((USER, user),),
        ((CLIENT_ID, client_id), (USER, None)),
        ((CLIENT_ID, None), (USER, None)),
        ((USER, None),),
        ((CLIENT_ID, client_id),),
        ((CLIENT_ID, None),),
    ]


class ClientQuotas:
    """The quotas set (by entity) and the usage sensors of this broker."""

    def __init__(self, config: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.window_s = 1.0
        self.samples = 11
        if config is not None:
            self.window_s = float(config.int("quota.window.size.seconds"))
            self.samples = config.int("quota.window.num")
        self.entities: dict[Entity, dict[str, float]] = {}
        #: quota kinds set on some entity: a kind absent here costs nothing per request
        self.active: frozenset[str] = frozenset()
        self._sensors: dict[tuple[str, Entity], SampledRate] = {}
        #: connection_creation_rate per IP (None: the default IP entity)
        self.ip_rates: dict[str | None, float] = {}
        self._ip_sensors: dict[str, SampledRate] = {}
        self._lookup: dict[tuple[str, str, str], tuple[Entity, float] | None] = {}

    # configuration ---------------------------------------------------------------------

    def apply(self, key: str, value: str | None) -> None:
        """An entity's quotas were set (``value``: JSON object) or removed (None)."""
        entity = entity_from_key(key)
        if value is None:
            self.entities.pop(entity, None)
        else:
            quotas = {k: float(v) for k, v in json.loads(value).items()}
            if quotas:
                self.entities[entity] = quotas
            else:
                self.entities.pop(entity, None)
        self.active = frozenset(k for q in self.entities.values() for k in q)
        self.ip_rates = {
            normalize_ip(dict(entity)[IP]): quotas[CONNECTION_CREATION_RATE]
            for entity, quotas in self.entities.items()
            if len(entity) == 1 and entity[0][0] == IP and CONNECTION_CREATION_RATE in quotas
        }
        self._lookup = {}

    def quota_for(self, kind: str, user: str, client_id: str) -> tuple[Entity, float] | None:
        """The quota of ``kind`` that applies, with the entity it is counted under (the
        matched entity with the default names replaced by the client's), or None."""
        cache_key = (kind, user, client_id)
        try:
            return self._lookup[cache_key]
        except KeyError:
            pass
        found: tuple[Entity, float] | None = None
        for entity in _candidates(user, client_id):
            quotas = self.entities.get(entity)
            if quotas is not None and kind in quotas:
                names = {USER: user, CLIENT_ID: client_id}
                counted = tuple((t, names[t]) for t, _ in entity)
                found = (counted, quotas[kind])
                break
        if len(self._lookup) > 10_000:
            self._lookup = {}
        self._lookup[cache_key] = found
        return found

    # usage -----------------------------------------------------------------------------

    def record(self, kind: str, principal: KafkaPrincipal, client_id: str | None, amount: float) -> int:
        """Count ``amount`` (bytes; for request_percentage, seconds of handler time
        times 100) against the quota of ``kind``; the throttle time in ms (0: none)."""
        if kind not in self.active:
            return 0
        match = self.quota_for(kind, principal.name, client_id or "")
        if match is None:
            return 0
        entity, quota = match
        if quota <= 0:
            return MAX_THROTTLE_MS
        sensor = self._sensors.get((kind, entity))
        if sensor is None:
            sensor = self._sensors[(kind, entity)] = SampledRate(self.samples, self.window_s)
        cap = self.window_s if kind == REQUEST_PERCENTAGE else None
        delay = sensor.record_and_throttle(amount, quota, self._clock(), cap)
        return min(MAX_THROTTLE_MS, round(delay * 1000))

    def unrecord(self, kind: str, principal: KafkaPrincipal, client_id: str | None, amount: float) -> None:
        """Take back ``amount`` recorded by :meth:`record` (Kafka's unrecordQuotaSensor:
        a throttled fetch answers nothing, so its bytes do not count)."""
        match = self.quota_for(kind, principal.name, client_id or "")
        if match is not None:
            sensor = self._sensors.get((kind, match[0]))
            if sensor is not None:
                sensor.record(-amount, self._clock())

    def max_value_in_window(self, kind: str, principal: KafkaPrincipal, client_id: str | None) -> float | None:
        """The most one request may take without being throttled for sure (Kafka's
        getMaxValueInQuotaWindow: the quota times ``quota.window.num - 1`` windows),
        which bounds a fetch's size; None without a quota."""
        match = self.quota_for(kind, principal.name, client_id or "")
        if match is None:
            return None
        return match[1] * max(1, self.samples - 1) * self.window_s

    # connection_creation_rate per IP ---------------------------------------------------

    def ip_connection_rate(self, ip: str) -> float | None:
        """The ``connection_creation_rate`` quota of ``ip`` (its own, else the default
        IP entity's), None for none."""
        rates = self.ip_rates
        if not rates:
            return None
        rate = rates.get(ip)
        if rate is None:
            rate = rates.get(None)
        return None if rate is None or rate >= NO_IP_QUOTA else rate

    def ip_sensor(self, ip: str, now: float) -> SampledRate:
        """The connection-rate sensor of ``ip`` (made on first use; idle ones dropped)."""
        sensor = self._ip_sensors.get(ip)
        if sensor is None:
            if len(self._ip_sensors) >= 1024:
                cutoff = now - max(IP_SENSOR_EXPIRY_S, self.samples * self.window_s)
                self._ip_sensors = {k: v for k, v in self._ip_sensors.items() if v.last_record >= cutoff}
            sensor = self._ip_sensors[ip] = SampledRate(self.samples, self.window_s)
        return sensor


def throttle(header: Any, throttle_ms: int) -> None:
    """Mute the request's connection for ``throttle_ms`` (Kafka's KIP-219: the answer
    goes out at once, carrying the time, and nothing more is read until it passed)."""
    if throttle_ms > 0:
        mute = getattr(header.connection, "mute_for", None)
        if mute is not None:
            mute(throttle_ms / 1000)
