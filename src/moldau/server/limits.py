"""Which connections the broker keeps: ``max.connections``, ``max.connections.per.ip``
(with ``max.connections.per.ip.overrides``), ``max.connection.creation.rate`` and
``connections.max.idle.ms``.

``max.connection.creation.rate`` counts the connections accepted in the last second,
broker-wide; one past the rate is closed at once like one past a limit (Kafka's
Acceptor delays accepting it instead; the client reconnects after its backoff either
way).

As Kafka's Acceptor and ConnectionQuotas do, a connection over a limit is closed as
soon as it is accepted, before it can send anything, and the ones already open keep
working. (Kafka's Acceptor waits for a free slot under the broker-wide limit instead
of closing; closing at once frees the client's socket sooner and keeps the accept loop
simple.) Idle connections -- nothing received or sent for ``connections.max.idle.ms``,
no request in progress -- are closed by a sweep, as Kafka's Selector expires them;
a negative value disables the sweep.

The limits are read from a callable at each accept, so dynamic broker configs take
effect for the next connection.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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
    #: when the connections of the last second were accepted (max.connection.creation.rate)
    _created: collections.deque[float] = field(default_factory=collections.deque)

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
        if len(self.connections) >= limits.max_connections:
            self.refused += 1
            return f"the broker already has the configured maximum of {limits.max_connections} connections"
        if limits.max_creation_rate < 2**31 - 1:
            now = self.clock()
            created = self._created
            while created and created[0] <= now - 1.0:
                created.popleft()
            if len(created) >= limits.max_creation_rate:
                self.refused += 1
                return f"more than max.connection.creation.rate={limits.max_creation_rate} connections in the last second"
            created.append(now)
        self.connections[id(connection)] = connection
        self.per_ip[ip] = count + 1
        return None

    def remove(self, connection: Tracked, ip: str) -> None:
        if self.connections.pop(id(connection), None) is None:
            return
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
