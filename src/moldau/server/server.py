"""The TCP listener: accepts Kafka client connections and hands frames to the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from moldau.server.connection import Connection

log = logging.getLogger(__name__)


class KafkaServer:
    def __init__(self, dispatch: Any, host: str, port: int, max_request_size: int, use_sendfile: bool) -> None:
        self.dispatch = dispatch
        self.host = host
        self.port = port
        self.max_request_size = max_request_size
        self.use_sendfile = use_sendfile
        self._server: asyncio.base_events.Server | None = None

    def _make_connection(self) -> Connection:
        return Connection(self.dispatch, self.max_request_size, self.use_sendfile)

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_connection, self.host, self.port, reuse_address=True, backlog=1024
        )
        sock = self._server.sockets[0]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = sock.getsockname()[:2]
        self.port = port
        return host, port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
