"""The TCP listener: accepts Kafka client connections and hands frames to the dispatcher.

It owns what the connections share: the staging buffer they read into, the memory
pool that bounds the request bytes they hold (``queued.max.request.bytes``), and the
registry that admits them (``max.connections``, ``max.connections.per.ip``) and
closes idle ones (``connections.max.idle.ms``) from a periodic sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from moldau.security.listener_security import SecuredListener
from moldau.server.connection import Connection, StagingBuffer
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
        self._server: asyncio.base_events.Server | None = None
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
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if self.security.ssl_context is not None:
            # a connection is admitted (max.connections) once its handshake is done: do
            # not let half-open handshakes linger for asyncio's default minute
            tls = {"ssl": self.security.ssl_context, "ssl_handshake_timeout": TLS_HANDSHAKE_TIMEOUT}
        self._server = await loop.create_server(
            self._make_connection, self.host, self.port, reuse_address=True, backlog=1024, **tls
        )
        sock = self._server.sockets[0]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = sock.getsockname()[:2]
        self.port = port
        self._sweeper = asyncio.create_task(self._sweep_idle())
        return host, port

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

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
