"""A minimal asyncio Kafka client for broker-to-broker requests (replica fetches).

One connection, one request in flight at a time (a fetcher is sequential), the broker's
own codecs for both directions: what a follower sends is exactly what a leader's
handler decodes. Response records stay memoryviews into the received frame, so a
follower appends fetched batches without copying them again.

The replica fetch loop runs one request per replication round trip, so its cost is
paid on every acks=all produce: the connection is an ``asyncio.BufferedProtocol``
(no stream reader, no task per request; the kernel copies a large response straight
into a buffer of its own, small ones are cut out of a 64 KiB receive buffer), and a
request waits on one future with one timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from moldau.protocol import primitives as p
from moldau.protocol.codec import codec_for
from moldau.protocol.header import encode_request_header
from moldau.protocol.schema import Api

__all__ = ["BrokerClient", "codec_for"]

RECEIVE_BUFFER = 64 * 1024


class _Responses(asyncio.BufferedProtocol):
    """Cuts size-prefixed response frames out of the byte stream, one waiter at a time."""

    def __init__(self) -> None:
        self._buffer = bytearray(RECEIVE_BUFFER)
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._frame: bytearray | None = None  # a response larger than the receive buffer
        self._frame_filled = 0
        self.waiter: asyncio.Future[bytes | bytearray] | None = None
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed by the other broker")
        self._fail(self.lost)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._frame is not None:
            return memoryview(self._frame)[self._frame_filled :]
        return self._view[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._frame is not None:
            self._frame_filled += nbytes
            if self._frame_filled == len(self._frame):
                frame, self._frame = self._frame, None
                self._deliver(frame)
            return
        self._filled += nbytes
        buf = self._buffer
        while self._filled >= 4:
            size = int.from_bytes(buf[:4], "big", signed=True)
            if size < 0:
                self._fail(OSError(f"response frame of negative size {size}"))
                return
            if size > len(buf) - 4:
                # a large response: its own buffer, which the kernel fills directly
                have = self._filled - 4
                frame = bytearray(size)
                frame[:have] = self._view[4 : self._filled]
                self._filled = 0
                self._frame, self._frame_filled = frame, have
                return
            end = 4 + size
            if self._filled < end:
                return
            small = bytes(self._view[4:end])  # one copy (a bytearray slice would be two)
            rest = self._filled - end
            buf[:rest] = buf[end : self._filled]
            self._filled = rest
            self._deliver(small)

    def _deliver(self, frame: bytes | bytearray) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            self._fail(OSError("a response nobody asked for"))
            return
        waiter.set_result(frame)

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class BrokerClient:
    """A connection to another broker; :meth:`request` sends one request and waits."""

    def __init__(self, host: str, port: int, client_id: str, ssl: Any = None,
                 sasl: tuple[str, str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.ssl = ssl  # an ssl.SSLContext when the inter-broker listener uses TLS
        self.sasl = sasl  # (mechanism, username, password) when it uses SASL
        self._protocol: _Responses | None = None
        self._correlation = 0

    @property
    def connected(self) -> bool:
        """True while the connection is open (as far as this side knows)."""
        protocol = self._protocol
        return (protocol is not None and protocol.lost is None and protocol.transport is not None
                and not protocol.transport.is_closing())

    async def connect(self, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        _, protocol = await asyncio.wait_for(
            loop.create_connection(
                _Responses, self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl is not None else None,
            ),
            timeout,
        )
        self._protocol = protocol
        if self.sasl is not None:
            try:
                await self._authenticate(timeout)
            except BaseException:
                await self.close()
                raise

    async def _authenticate(self, timeout: float) -> None:
        """SaslHandshake v1 and SaslAuthenticate v1 with PLAIN or SCRAM; OSError if refused."""
        from moldau.protocol.messages import ALL_APIS
        from moldau.security.scram import ScramClient, ScramError

        assert self.sasl is not None
        mechanism, user, password = self.sasl
        handshake, authenticate = ALL_APIS[17], ALL_APIS[36]
        answer = await self.request(handshake, 1, codec_for(handshake).Request(mechanism=mechanism), timeout)
        if answer.error_code:
            raise OSError(f"SASL mechanism {mechanism} refused (error {answer.error_code})")

        async def step(token: bytes) -> bytes:
            reply = await self.request(authenticate, 1, codec_for(authenticate).Request(auth_bytes=token), timeout)
            if reply.error_code:
                raise OSError(f"SASL authentication failed: {reply.error_message}")
            return bytes(reply.auth_bytes)

        if mechanism == "PLAIN":
            await step(b"\0" + user.encode() + b"\0" + password.encode())
            return
        client = ScramClient(mechanism, user, password)
        try:
            client.verify(await step(client.final(await step(client.first()))))
        except ScramError as exc:
            raise OSError(str(exc)) from None

    async def request(self, api: Api, version: int, body: Any, timeout: float, client_id: str | None = None) -> Any:
        """Send ``body`` as ``api`` v``version`` (with this connection's client id, or
        ``client_id``); the decoded response, or raises (OSError, asyncio.TimeoutError,
        ProtocolDecodeError)."""
        if self._protocol is None:
            await self.connect()
        protocol = self._protocol
        assert protocol is not None
        if protocol.lost is not None or protocol.transport is None or protocol.transport.is_closing():
            raise ConnectionResetError("connection to the other broker is closed")
        if protocol.waiter is not None:
            raise OSError("a request is already in flight on this connection")
        codec = codec_for(api)
        flexible = api.is_flexible(version)
        self._correlation = (self._correlation + 1) & 0x7FFFFFFF
        frame = encode_request_header(api.key, version, self._correlation, client_id or self.client_id, flexible)
        frame += codec.encode_request(version, body)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bytes | bytearray] = loop.create_future()
        protocol.waiter = waiter
        protocol.transport.writelines([len(frame).to_bytes(4, "big"), frame])
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            payload = await waiter
        except (TimeoutError, asyncio.CancelledError):
            protocol.waiter = None
            protocol.transport.close()  # a late answer must not be taken for the next one
            raise
        finally:
            timer.cancel()
        (correlation,) = p.I32.unpack_from(payload, 0)
        if correlation != self._correlation:
            raise OSError(f"correlation id {correlation}, expected {self._correlation}")
        pos = 4
        if flexible:
            pos = p.skip_tagged_fields(payload, pos)
        return codec.decode_response(version, payload, pos)

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            with contextlib.suppress(Exception):
                await asyncio.sleep(0)
