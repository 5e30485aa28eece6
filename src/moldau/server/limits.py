"""Which connections the broker keeps: ``max.connections``, ``max.connections.per.ip``
(with ``max.connections.per.ip.overrides``), the connection creation rates and
``connections.max.idle.ms``.

Connection creation rates, as Kafka's ConnectionQuotas keeps them, each measured by a
:class:`~moldau.security.sampled_rate.SampledRate` (``quota.window.num`` samples of
``quota.window.size.seconds``) and throttled by at most one window per connection:

- ``max.connection.creation.rate`` broker-wide, and per listener
  (``listener.name.<l>.max.connection.creation.rate``, which defaults to the broker-wide
  value). A connection over either rate is not refused: the listener's acceptor waits
  the throttle time before it takes it (and the next ones) in, so connections are
  accepted late, at the rate. The inter-broker listener, when there are several, is
  exempt from the broker-wide rate (only its own applies), as Kafka protects it.
- ``connection_creation_rate`` per IP (client quotas on the ``ip`` entity, a given
  address or the default): a connection over it is not counted and is closed after
  the throttle time, without a byte read.

``max.connections`` (broker-wide) and ``listener.name.<l>.max.connections`` are slots,
as Kafka's ConnectionQuotas keeps them: when a listener has none free, its acceptor
waits until a connection closes before it takes the next one in (the client waits in
the kernel's backlog, nothing is refused). The inter-broker listener, when there are
several, never waits for a broker-wide slot: a connection on it past the limit closes
the least recently active idle client connection of another listener instead, so
replication cannot be starved by clients. A connection over ``max.connections.per.ip``
(or its override) is closed as soon as it is accepted, before it can send anything,
and the ones already open keep working. Idle connections -- nothing received or sent for ``connections.max.idle.ms``,
no request in progress -- are closed by a sweep, as Kafka's Selector expires them;
a negative value disables the sweep.

The limits are read from a callable at each accept, so dynamic broker configs take
effect for the next connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from moldau.security.sampled_rate import SampledRate

log = logging.getLogger(__name__)


class Tracked(Protocol):
    last_active: float

    @property
    def busy(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ConnectionSettings:
    max_connections: int = 2**31 - 1
    max_per_ip: int = 2**31 - 1
    per_ip_overrides: str = ""
    max_idle_ms: int = 600_000
    max_creation_rate: int = 2**31 - 1
    #: ``listener.name.<l>.max.connection.creation.rate`` as it applies, by listener name
    listener_creation_rates: dict[str, int] = field(default_factory=dict)
    #: ``listener.name.<l>.max.connections``, for the listeners that set it
    listener_max_connections: dict[str, int] = field(default_factory=dict)
    #: the inter-broker listener, exempt from the broker-wide rate when there are several
    protected_listener: str | None = None
    listener_count: int = 1
    quota_samples: int = 11
    quota_window_s: float = 1.0


def parse_overrides(text: str) -> dict[str, int]:
    """``max.connections.per.ip.overrides``: ``host:count,ip:count`` (hosts resolved)."""
    result: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        if not sep or not host:
            raise ValueError(f"invalid max.connections.per.ip.overrides entry {item!r}")
        try:
            limit = int(count)
        except ValueError:
            raise ValueError(f"invalid max.connections.per.ip.overrides entry {item!r}") from None
        if limit < 0:
            raise ValueError(f"invalid max.connections.per.ip.overrides entry {item!r}")
        host = host.strip("[]")
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            try:
                address = socket.gethostbyname(host)
            except OSError:
                log.warning("max.connections.per.ip.overrides: cannot resolve %s; ignored", host)
                continue
        result[address] = limit
    return result


@dataclass
class ConnectionRegistry:
    """The open connections, counted per IP, with the limits that admit new ones."""

    settings: Callable[[], ConnectionSettings] = ConnectionSettings
    clock: Callable[[], float] = time.monotonic
    connections: dict[int, Tracked] = field(default_factory=dict)
    per_ip: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    expired: int = 0
    _overrides_text: str = ""
    _overrides: dict[str, int] = field(default_factory=dict)
    #: the client quotas (``ip`` entities' ``connection_creation_rate``), set by the broker
    quotas: Any = None
    #: connections accepted late for a creation rate, and closed for an IP's rate
    throttled: int = 0
    ip_throttled: int = 0
    #: times an acceptor waited for a free slot (``max.connections``)
    blocked: int = 0
    _broker_rate: SampledRate | None = None
    _listener_rates: dict[str, SampledRate] = field(default_factory=dict)
    #: open connections by listener name (``listener.name.<l>.max.connections``)
    per_listener: dict[str, int] = field(default_factory=dict)
    #: set when a connection closes: acceptors waiting for a slot look again
    _freed: asyncio.Event = field(default_factory=asyncio.Event)
    #: client connections closed to make room for an inter-broker one
    evicted: int = 0

    def slot_available(self, listener: str, pending: int = 0) -> bool:
        """Whether ``listener`` may take one more connection in (Kafka's
        ConnectionQuotas.connectionSlotAvailable); ``pending``: connections this listener
        accepted that are not registered yet (TLS handshakes under way)."""
        limits = self.settings()
        listener_max = limits.listener_max_connections.get(listener)
        if listener_max is not None and self.per_listener.get(listener, 0) + pending >= listener_max:
            return False
        if listener == limits.protected_listener and limits.listener_count > 1:
            return True
        return len(self.connections) + pending < limits.max_connections

    async def wait_for_slot(self, listener: str, pending: Callable[[], int] = lambda: 0) -> float:
        """Wait until ``listener`` has a free connection slot; the seconds waited. The
        limits are read again at least every second (a dynamic change applies)."""
        if self.slot_available(listener, pending()):
            return 0.0
        started = self.clock()
        self.blocked += 1
        while not self.slot_available(listener, pending()):
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), 1.0)
        return self.clock() - started

    def wake(self) -> None:
        """Let waiting acceptors look again (a connection closed, a handshake ended)."""
        self._freed.set()

    def _evict_for(self, listener: str) -> None:
        """Close the least recently active idle connection of another listener, to make
        room for one on the protected (inter-broker) listener."""
        candidates = [c for c in self.connections.values()
                      if getattr(c, "listener_name", None) != listener and not c.busy]
        if candidates:
            min(candidates, key=lambda c: c.last_active).close()
            self.evicted += 1

    def admit(self, connection: Tracked, ip: str) -> str | None:
        """Register ``connection``; or the reason to refuse it (it is then not registered)."""
        limits = self.settings()
        count = self.per_ip.get(ip, 0)
        if limits.per_ip_overrides != self._overrides_text:
            self._overrides_text = limits.per_ip_overrides
            try:
                self._overrides = parse_overrides(limits.per_ip_overrides)
            except ValueError as exc:  # a dynamic update the broker cannot read: keep the last
                log.warning("%s; keeping the previous overrides", exc)
        per_ip = self._overrides.get(ip, limits.max_per_ip)
        if count >= per_ip:
            self.refused += 1
            return f"{ip} already has the configured maximum of {per_ip} connections"
        listener = getattr(connection, "listener_name", "")
        protected = listener == limits.protected_listener and limits.listener_count > 1
        if len(self.connections) >= limits.max_connections:
            if protected:
                self._evict_for(listener)
            else:  # only when handshakes outran the acceptor's wait for a slot
                self.refused += 1
                return f"the broker already has the configured maximum of {limits.max_connections} connections"
        self.connections[id(connection)] = connection
        self.per_ip[ip] = count + 1
        self.per_listener[listener] = self.per_listener.get(listener, 0) + 1
        return None

    def creation_delay(self, listener: str) -> float:
        """Count a new connection on ``listener`` against ``max.connection.creation.rate``
        (broker-wide and the listener's); the seconds to wait before accepting it (Kafka's
        Acceptor blocks that long), at most one quota window."""
        limits = self.settings()
        now = self.clock()
        window = limits.quota_window_s
        delay = 0.0
        if not (listener == limits.protected_listener and limits.listener_count > 1):
            if self._broker_rate is None:
                self._broker_rate = SampledRate(limits.quota_samples, window)
            delay = self._broker_rate.record_and_throttle(1, limits.max_creation_rate, now, window)
        sensor = self._listener_rates.get(listener)
        if sensor is None:
            sensor = self._listener_rates[listener] = SampledRate(limits.quota_samples, window)
        rate = limits.listener_creation_rates.get(listener, limits.max_creation_rate)
        delay = max(delay, sensor.record_and_throttle(1, rate, now, window))
        if delay > 0:
            self.throttled += 1
        return delay

    def ip_close_delay(self, listener: str, ip: str) -> float:
        """Count a new connection from ``ip`` against its ``connection_creation_rate``;
        0 to go on, or the seconds after which to close it: over the rate it is not
        counted (nor in the broker's and the listener's rates), as in Kafka."""
        quotas = self.quotas
        rate = quotas.ip_connection_rate(ip) if quotas is not None else None
        if rate is None:
            return 0.0
        limits = self.settings()
        now = self.clock()
        sensor = quotas.ip_sensor(ip, now)
        delay: float = sensor.record_and_throttle(1, rate, now, limits.quota_window_s)
        if delay <= 0:
            return 0.0
        sensor.record(-1, now)
        if self._broker_rate is not None and not (
            listener == limits.protected_listener and limits.listener_count > 1
        ):
            self._broker_rate.record(-1, now)
        listener_rate = self._listener_rates.get(listener)
        if listener_rate is not None:
            listener_rate.record(-1, now)
        self.ip_throttled += 1
        return delay

    def remove(self, connection: Tracked, ip: str) -> None:
        if self.connections.pop(id(connection), None) is None:
            return
        listener = getattr(connection, "listener_name", "")
        on_listener = self.per_listener.get(listener, 0) - 1
        if on_listener > 0:
            self.per_listener[listener] = on_listener
        else:
            self.per_listener.pop(listener, None)
        self.wake()
        left = self.per_ip[ip] - 1
        if left:
            self.per_ip[ip] = left
        else:
            del self.per_ip[ip]

    def expire_idle(self) -> int:
        """Close the connections idle for longer than ``connections.max.idle.ms``."""
        max_idle_ms = self.settings().max_idle_ms
        if max_idle_ms < 0:
            return 0
        cutoff = self.clock() - max_idle_ms / 1000
        idle = [c for c in self.connections.values() if c.last_active < cutoff and not c.busy]
        for connection in idle:
            connection.close()
        self.expired += len(idle)
        return len(idle)

    def sweep_interval(self) -> float | None:
        """How often to look for idle connections (None: never)."""
        max_idle_ms = self.settings().max_idle_ms
        if max_idle_ms < 0:
            return None
        return min(max(max_idle_ms / 4000, 0.05), 10.0)
