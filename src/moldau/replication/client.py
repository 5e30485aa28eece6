"""A minimal asyncio Kafka client for broker-to-broker requests (replica fetches).

One connection, one request in flight at a time (a fetcher is sequential), the broker's
own codecs for both directions: what a follower sends is exactly what a leader's
handler decodes. Response records stay memoryviews into the received frame, so a
follower appends fetched batches without copying them again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from moldau.protocol import primitives as p
from moldau.protocol.codec import codec_for
from moldau.protocol.header import encode_request_header
from moldau.protocol.schema import Api


class BrokerClient:
    """A connection to another broker; :meth:`request` sends one request and waits."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation = 0

    @property
    def connected(self) -> bool:
        """True while the connection is open (as far as this side knows)."""
        return (self._writer is not None and not self._writer.is_closing()
                and self._reader is not None and not self._reader.at_eof())

    async def connect(self, timeout: float = 5.0) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=1 << 20), timeout
        )

    async def request(self, api: Api, version: int, body: Any, timeout: float) -> Any:
        """Send ``body`` as ``api`` v``version``; the decoded response, or raises
        (OSError, asyncio.TimeoutError, IncompleteReadError, ProtocolDecodeError)."""
        if self._writer is None or self._reader is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        codec = codec_for(api)
        flexible = api.is_flexible(version)
        self._correlation = (self._correlation + 1) & 0x7FFFFFFF
        frame = encode_request_header(api.key, version, self._correlation, self.client_id, flexible)
        frame += codec.encode_request(version, body)
        self._writer.write(len(frame).to_bytes(4, "big") + bytes(frame))
        await self._writer.drain()
        reader = self._reader

        async def read() -> bytes:
            size = int.from_bytes(await reader.readexactly(4), "big")
            return await reader.readexactly(size)

        payload = await asyncio.wait_for(read(), timeout)
        (correlation,) = p.I32.unpack_from(payload, 0)
        if correlation != self._correlation:
            raise OSError(f"correlation id {correlation}, expected {self._correlation}")
        pos = 4
        if flexible:
            pos = p.skip_tagged_fields(payload, pos)
        return codec.decode_response(version, payload, pos)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
