"""The HTTP listener: one aiohttp application on the broker's event loop.

Why aiohttp: it is a small, long-maintained asyncio server (C-accelerated HTTP parser,
bounded header parsing) that runs on the loop that already runs the broker -- uvloop's
or the default one -- with no thread and no second loop, so a page can read the
broker's state directly and a request costs the hot paths only its own loop time.
Its ``web.Application`` with an ``AppRunner`` gives routing, middlewares and clean
shutdown without taking over the process (no ``run_app``, no signal handlers).

Theory of operation: the listening socket is ours (``loop.create_server``), and each
connection's aiohttp protocol sits behind a :class:`_Guard` that enforces what aiohttp
leaves open, so neither garbage nor slow clients can pile up:

- at most ``moldau.http.max.connections`` connections; more are dropped at accept;
- every gap in which the server waits on the client -- from accept to a request's
  headers, from the end of a handler until its response is written and the next
  request's headers are in -- lasts at most ``moldau.http.idle.timeout.ms``, then the
  connection is aborted (a slow-loris sender, a reader that never drains its answer,
  an idle keep-alive). A running handler is never cut; handlers bound their own work;
- a request line or header field over 8 KiB, more than 100 headers, or a body over
  ``moldau.http.max.body.bytes`` is refused by aiohttp (400/413) and the connection closed.

Adding routes (the console, say): write ``def routes(app: web.Application, broker:
Broker) -> None`` that calls ``app.router.add_get(...)`` (closing over ``broker``) and
list it in :data:`ROUTES`. ``app[READINESS]`` holds the :class:`Readiness`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from moldau.http import console, health, metrics
from moldau.http.health import READINESS, Readiness

if TYPE_CHECKING:
    from moldau.broker.broker import Broker
    from moldau.config.broker import BrokerConfig

log = logging.getLogger(__name__)

RouteSetup = Callable[[web.Application, "Broker"], None]
#: every part of the HTTP application, in order; each adds its routes
ROUTES: list[RouteSetup] = [health.routes, metrics.routes, console.routes]

MAX_LINE_BYTES = 8190
MAX_HEADERS = 100


@dataclass(frozen=True)
class HttpSettings:
    host: str
    port: int
    max_connections: int = 64
    idle_timeout_s: float = 10.0
    max_body_bytes: int = 1 << 20

    @classmethod
    def from_config(cls, config: BrokerConfig) -> HttpSettings | None:
        """The listener's settings, or None when ``moldau.http.listener`` is unset."""
        address = config["moldau.http.listener"]
        if not address:
            return None
        host, port = parse_address(str(address))
        return cls(
            host,
            port,
            max_connections=config.int("moldau.http.max.connections"),
            idle_timeout_s=config.int("moldau.http.idle.timeout.ms") / 1000,
            max_body_bytes=config.int("moldau.http.max.body.bytes"),
        )


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; an empty host means every address)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT for the HTTP listener, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class HttpServer:
    """The broker's HTTP listener; ``start()`` binds it, ``stop()`` closes it."""

    def __init__(self, broker: Broker, settings: HttpSettings, readiness: Readiness) -> None:
        self.broker = broker
        self.settings = settings
        self.readiness = readiness
        self.app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[self._track])
        self.app[READINESS] = readiness
        for setup in ROUTES:
            setup(self.app, broker)
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            shutdown_timeout=2.0,
            # the guard closes idle connections; aiohttp's own timer (armed at accept only
            # in its recent versions) stays as a backstop
            keepalive_timeout=settings.idle_timeout_s * 3,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_LINE_BYTES,
            max_headers=MAX_HEADERS,
        )
        self._server: asyncio.base_events.Server | None = None
        self._guards: dict[Any, _Guard] = {}
        self.port = settings.port

    async def start(self) -> int:
        """Listen; returns the bound port (``port`` 0 picks a free one)."""
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_protocol, self.settings.host, self.settings.port, reuse_address=True, backlog=128
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for guard in list(self._guards.values()):
            guard.transport.abort()
        await self._runner.cleanup()

    @property
    def connections(self) -> int:
        return len(self._guards)

    def _make_protocol(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        return _Guard(self, server())

    @web.middleware
    async def _track(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        guard = self._guards.get(request.transport)
        if guard is None:
            return await handler(request)
        guard.begin()
        try:
            return await handler(request)
        finally:
            guard.end()


class _Guard(asyncio.Protocol):
    """Stands between the socket and aiohttp's protocol: admits the connection (or
    drops it past the limit) and aborts it when the client leaves the server waiting
    longer than the idle timeout. Everything else is passed through."""

    def __init__(self, owner: HttpServer, inner: Any) -> None:
        self.owner = owner
        self.inner = inner
        self.transport: Any = None
        self.busy = 0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        guards = self.owner._guards
        if len(guards) >= self.owner.settings.max_connections:
            log.debug("HTTP connection from %s dropped: %d connections open",
                      transport.get_extra_info("peername"), len(guards))
            self.inner = None
            transport.abort()
            return
        guards[transport] = self
        self._arm()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.owner._guards.pop(self.transport, None)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def begin(self) -> None:
        """A request's headers are in and its handler runs."""
        self.busy += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def end(self) -> None:
        """The handler returned: the client must take its answer and go on in time."""
        self.busy -= 1
        if self.busy == 0:
            self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.owner.settings.idle_timeout_s, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.busy:
            return  # a handler runs; end() re-arms
        log.debug("HTTP connection from %s closed: idle or too slow", self.transport.get_extra_info("peername"))
        self.transport.abort()
