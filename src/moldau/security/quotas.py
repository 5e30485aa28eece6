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

Throttling. Kafka measures a rate over ``quota.window.num`` windows of
``quota.window.size.seconds`` and, when it exceeds the quota, answers with
``throttle_time_ms = (rate - quota) / quota * window`` and mutes the connection for
that time. We keep the same effect with a *virtual clock* per sensor: each request of
``n`` units moves the sensor's clock forward by ``n / quota`` seconds (never starting
from further back than one ``quota.window.size.seconds`` ago); the throttle time is
how far that clock runs ahead of now. A client that waits out its throttle times
therefore moves at the quota on average, with bursts bounded by one window's worth.
(Kafka's sampled rate lets an idle client burst for up to ``quota.window.num``
windows; ours allows one, which is stricter and steadier.)

Stored in the metadata store under the kind ``"quotas"``: key the entity (JSON list of
``[type, name]``), value the quotas (JSON object), so every broker of a cluster
applies the same ones; each broker counts its own traffic, as in Kafka.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from moldau.security.principal import KafkaPrincipal

QUOTA_KIND = "quotas"
USER = "user"
CLIENT_ID = "client-id"
IP = "ip"
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONNECTION_CREATION_RATE = "connection_creation_rate"
QUOTA_KEYS = frozenset({PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE})
#: the longest throttle Kafka applies (its quota.window... bounded by the request timeout)
MAX_THROTTLE_MS = 30_000

Entity = tuple[tuple[str, str | None], ...]
"""Sorted (entity type, name or None for the default) pairs."""


def entity_key(entity: Entity) -> str:
    return json.dumps([list(pair) for pair in sorted(entity)], separators=(",", ":"))


def entity_from_key(key: str) -> Entity:
    return tuple(sorted((str(kind), name) for kind, name in json.loads(key)))


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


class _Sensor:
    """A virtual clock (see the module docstring); ``clock`` in monotonic seconds."""

    __slots__ = ("clock",)

    def __init__(self) -> None:
        self.clock = 0.0

    def record(self, amount: float, quota: float, now: float, window_s: float) -> float:
        """Count ``amount`` against ``quota`` per second; the seconds to throttle."""
        self.clock = max(self.clock, now - window_s) + amount / quota
        return max(0.0, self.clock - now)


class ClientQuotas:
    """The quotas set (by entity) and the usage sensors of this broker."""

    def __init__(self, config: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.window_s = 1.0
        if config is not None:
            self.window_s = float(config.int("quota.window.size.seconds"))
        self.entities: dict[Entity, dict[str, float]] = {}
        #: quota kinds set on some entity: a kind absent here costs nothing per request
        self.active: frozenset[str] = frozenset()
        self._sensors: dict[tuple[str, Entity], _Sensor] = {}
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
            sensor = self._sensors[(kind, entity)] = _Sensor()
        delay = sensor.record(amount, quota, self._clock(), self.window_s)
        return min(MAX_THROTTLE_MS, int(delay * 1000))


def throttle(header: Any, throttle_ms: int) -> None:
    """Mute the request's connection for ``throttle_ms`` (Kafka's KIP-219: the answer
    goes out at once, carrying the time, and nothing more is read until it passed)."""
    if throttle_ms > 0:
        mute = getattr(header.connection, "mute_for", None)
        if mute is not None:
            mute(throttle_ms / 1000)
