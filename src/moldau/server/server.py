"""The TCP listener: accepts Kafka client connections and hands frames to the dispatcher.

It owns what the connections share: the staging buffer they read into, the memory
pool that bounds the request bytes they hold (``queued.max.request.bytes``), and the
registry that admits them (``max.connections``, ``max.connections.per.ip``) and
closes idle ones (``connections.max.idle.ms``) from a periodic sweep.

Each listening socket has its own accept loop (Kafka's Acceptor) rather than the event
loop's built-in one, because connection creation rates are enforced there: over
``max.connection.creation.rate`` (broker-wide or the listener's) the loop waits the
throttle time before it accepts again, so connections are taken in late instead of
refused; with no free slot under ``max.connections`` (broker-wide or the listener's)
it waits until a connection closes; over an IP's ``connection_creation_rate`` the
connection is closed after the throttle time, unread (see :mod:`moldau.server.limits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from moldau.security.listener_security import SecuredListener
from moldau.server.connection import Connection, StagingBuffer, closing_log
from moldau.server.limits import ConnectionRegistry
from moldau.server.listeners import Listener
from moldau.server.memory_pool import MemoryPool

log = logging.getLogger(__name__)
TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds


class KafkaServer:
    """One listener: plaintext, or TLS through the loop's own TLS transport (then the
    connections see decrypted bytes, and fetches are read and written, never sendfile)."""

    def __init__(
        self,
        dispatch: Any,
        host: str,
        port: int,
        max_request_size: int,
        use_sendfile: bool,
        *,
        pool: MemoryPool | None = None,
        registry: ConnectionRegistry | None = None,
        listener: Listener | None = None,
        security: SecuredListener | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.listener_name = listener.name if listener is not None else "PLAINTEXT"
        self.security = security if security is not None else SecuredListener()
        self.host = host
        self.port = port
        self.max_request_size = max_request_size
        self.use_sendfile = use_sendfile
        self.pool = pool if pool is not None else MemoryPool(-1)
        self.registry = registry if registry is not None else ConnectionRegistry()
        self.staging = StagingBuffer()
        self._sockets: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[None]] = []
        self._handshakes: set[asyncio.Task[Any]] = set()
        self._to_close: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def _make_connection(self) -> Connection:
        return Connection(
            self.dispatch,
            self.max_request_size,
            self.use_sendfile,
            pool=self.pool,
            staging=self.staging,
            registry=self.registry,
            listener_name=self.listener_name,
            security=self.security,
        )

    async def start(self) -> tuple[str, int]:
        self._sockets = _bind(self.host, self.port)
        host, port = self._sockets[0].getsockname()[:2]
        self.port = port
        self._acceptors = [asyncio.create_task(self._accept_loop(sock)) for sock in self._sockets]
        self._sweeper = asyncio.create_task(self._sweep_idle())
        return host, port

    async def _accept_loop(self, listening: socket.socket) -> None:
        """Kafka's Acceptor: take connections in one at a time, waiting out a creation
        rate's throttle time before taking the next (nothing is refused for a rate)."""
        loop = asyncio.get_running_loop()
        registry = self.registry
        while True:
            try:
                sock, address = await loop.sock_accept(listening)
            except OSError as exc:  # out of file descriptors, say: try again shortly
                log.warning("accepting on %s:%s failed: %s", self.host, self.port, exc)
                await asyncio.sleep(0.1)
                continue
            try:
                delay = registry.creation_delay(self.listener_name)
                if delay > 0:
                    await asyncio.sleep(delay)
                await registry.wait_for_slot(self.listener_name, self._handshakes.__len__)
                ip = address[0] if isinstance(address, tuple) else "?"
                close_in = registry.ip_close_delay(self.listener_name, ip)
            except asyncio.CancelledError:
                sock.close()
                raise
            except Exception:
                log.exception("connection quota check failed; accepting the connection")
                close_in = 0.0
            if close_in > 0:
                closing_log("throttled connection from %s: over its connection_creation_rate, closing in %d ms",
                            ip, round(close_in * 1000))
                self._close_later(sock, close_in)
                continue
            self._attach(sock)

    def _close_later(self, sock: socket.socket, seconds: float) -> None:
        """Close a throttled connection after ``seconds`` (Kafka's delayed close)."""
        key = id(sock)

        def close() -> None:
            self._to_close.pop(key, None)
            sock.close()

        self._to_close[key] = (sock, asyncio.get_running_loop().call_later(seconds, close))

    def _attach(self, sock: socket.socket) -> None:
        """Give an accepted socket a transport and a Connection (after the TLS
        handshake on a TLS listener: a task, so a slow handshake holds no one up)."""
        loop = asyncio.get_running_loop()
        try:
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            return
        tls: dict[str, Any] = {}
        if self.security.ssl_context is not None:
            # a connection is admitted (max.connections) once its handshake is done: do
            # not let half-open handshakes linger for asyncio's default minute
            tls = {"ssl": self.security.ssl_context, "ssl_handshake_timeout": TLS_HANDSHAKE_TIMEOUT}
        task = asyncio.ensure_future(loop.connect_accepted_socket(self._make_connection, sock, **tls))
        self._handshakes.add(task)
        task.add_done_callback(self._handshake_done)

    def _handshake_done(self, task: asyncio.Future[Any]) -> None:
        self._handshakes.discard(task)  # type: ignore[arg-type]
        self.registry.wake()
        if not task.cancelled() and task.exception() is not None:
            closing_log("connection setup failed on %s: %s", self.listener_name, task.exception())

    async def _sweep_idle(self) -> None:
        """Close connections idle past ``connections.max.idle.ms``."""
        while True:
            interval = self.registry.sweep_interval()
            await asyncio.sleep(interval if interval is not None else 10.0)
            if interval is None:
                continue
            try:
                closed = self.registry.expire_idle()
            except Exception:
                log.exception("idle connection sweep failed")
                continue
            if closed:
                log.debug("closed %d idle connections", closed)

    @property
    def is_serving(self) -> bool:
        """Listening (between :meth:`start` and :meth:`stop`)."""
        return bool(self._sockets)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in self._acceptors:
            task.cancel()
        for task in self._acceptors:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._acceptors = []
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        for task in list(self._handshakes):
            task.cancel()
        for sock, timer in self._to_close.values():
            timer.cancel()
            sock.close()
        self._to_close.clear()


def _bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for ``host:port`` as the event loop's create_server binds them
    (every address the host resolves to; with port 0, the first one's port for all)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[Any, ...]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(1024)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
