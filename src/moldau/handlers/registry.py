"""The table of API handlers, and the dispatcher that turns frames into answers.

What ApiVersions advertises is built from this table, so it is by construction what
is implemented: an API is served exactly when a handler for it is registered, over the
versions the handler declares. A request for an API or version we do not serve, or one
that does not decode, is answered with Kafka's error for it where the protocol allows
and the connection is closed otherwise; an exception inside a handler becomes
UNKNOWN_SERVER_ERROR for that request and never poisons the broker.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moldau.log_throttle import ThrottledLog
from moldau.protocol.codec import MessageCodec
from moldau.protocol.errors import ErrorCode, ProtocolDecodeError
from moldau.protocol.header import (
    API_VERSIONS_KEY,
    RequestHeader,
    decode_request_header,
    peek_api,
    response_header,
)
from moldau.protocol.schema import Api

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

log = logging.getLogger(__name__)
# a client chooses how often it sends what we cannot read: at most 10 lines a minute
closing_log = ThrottledLog(log, "connections closed on unreadable requests")

HandlerFn = Callable[["Broker", RequestHeader, Any], Any]


@dataclass
class Handler:
    api: Api
    codec: MessageCodec
    min_version: int
    max_version: int
    fn: HandlerFn
    is_async: bool


CODECS: dict[int, MessageCodec] = {}
HANDLERS: dict[int, Handler] = {}


def codec_for(api: Api) -> MessageCodec:
    codec = CODECS.get(api.key)
    if codec is None:
        codec = CODECS[api.key] = MessageCodec(api)
    return codec


def handles(api: Api, min_version: int, max_version: int) -> Callable[[HandlerFn], HandlerFn]:
    """Register ``fn`` as the handler of ``api`` for the given version range."""
    if not api.min_version <= min_version <= max_version <= api.max_version:
        raise ValueError(f"{api.name}: versions {min_version}-{max_version} outside the spec's range")

    def register(fn: HandlerFn) -> HandlerFn:
        HANDLERS[api.key] = Handler(
            api, codec_for(api), min_version, max_version, fn, inspect.iscoroutinefunction(fn)
        )
        return fn

    return register


def error_response(handler: Handler, request: Any, code: ErrorCode) -> Any:
    """A response to ``request`` carrying ``code`` everywhere an error code can go."""
    response = handler.codec.Response()
    _fill_errors(response, code)
    return response


def _fill_errors(obj: Any, code: ErrorCode) -> None:
    for f in obj._fields:
        if f.name == "error_code":
            obj.error_code = int(code)


class Dispatcher:
    """Decodes a frame, calls the handler, encodes the answer (or its awaitable)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def __call__(self, frame: bytearray, connection: Any) -> Any:
        try:
            api_key, api_version, correlation_id = peek_api(frame)
        except ProtocolDecodeError:
            closing_log("closing %s: request too short for a header", connection.peer)
            connection.close()
            return None
        handler = HANDLERS.get(api_key)
        if handler is None:
            closing_log("closing %s: unknown or unsupported API key %d", connection.peer, api_key)
            connection.close()
            return None
        if not handler.min_version <= api_version <= handler.max_version:
            if api_key == API_VERSIONS_KEY:
                return self._api_versions_fallback(correlation_id)
            closing_log(
                "closing %s: %s v%d is not supported (%d-%d)",
                connection.peer,
                handler.api.name,
                api_version,
                handler.min_version,
                handler.max_version,
            )
            connection.close()
            return None
        flexible = handler.api.is_flexible(api_version)
        try:
            header = decode_request_header(frame, flexible)
            request = handler.codec.decode_request(api_version, frame, header.header_size)
        except ProtocolDecodeError as exc:
            closing_log("closing %s: %s", connection.peer, exc)
            connection.close()
            return None
        header.connection = connection
        if handler.is_async:
            return self._answer_later(handler, header, request, flexible)
        try:
            response = handler.fn(self.broker, header, request)
        except Exception:
            log.exception("%s handler failed", handler.api.name)
            response = error_response(handler, request, ErrorCode.UNKNOWN_SERVER_ERROR)
        if response is None:
            return None
        if inspect.iscoroutine(response):
            # a synchronous handler that must wait after all (an acks=all produce)
            return self._encode_later(handler, header, request, response, flexible)
        return self.encode(handler, header, response, flexible)

    async def _encode_later(
        self, handler: Handler, header: RequestHeader, request: Any, pending: Any, flexible: bool
    ) -> Any:
        try:
            response = await pending
        except Exception:
            log.exception("%s handler failed", handler.api.name)
            response = error_response(handler, request, ErrorCode.UNKNOWN_SERVER_ERROR)
        return self.encode(handler, header, response, flexible)

    async def _answer_later(self, handler: Handler, header: RequestHeader, request: Any, flexible: bool) -> Any:
        try:
            response = await handler.fn(self.broker, header, request)
        except Exception:
            log.exception("%s handler failed", handler.api.name)
            response = error_response(handler, request, ErrorCode.UNKNOWN_SERVER_ERROR)
        if response is None:
            return None
        return self.encode(handler, header, response, flexible)

    def encode(self, handler: Handler, header: RequestHeader, response: Any, flexible: bool) -> list[Any]:
        header_flexible = flexible and handler.api.key != API_VERSIONS_KEY
        out = response_header(header.correlation_id, header_flexible)
        chunks = handler.codec.encode_response_body(header.api_version, response, out)
        total = sum(len(c) if isinstance(c, bytes | bytearray) else c.size for c in chunks) - 4
        first = chunks[0]
        if isinstance(first, bytearray):
            first[0:4] = total.to_bytes(4, "big", signed=True)
        else:
            chunks[0] = total.to_bytes(4, "big", signed=True) + first[4:]
        return chunks

    def _api_versions_fallback(self, correlation_id: int) -> list[Any]:
        """Kafka's answer to an ApiVersions version it does not know: v0 body, error 35."""
        handler = HANDLERS[API_VERSIONS_KEY]
        response = api_versions_response(ErrorCode.UNSUPPORTED_VERSION)
        out = response_header(correlation_id, False)
        chunks = handler.codec.encode_response_body(0, response, out)
        data = b"".join(chunks)
        return [(len(data) - 4).to_bytes(4, "big") + data[4:]]


def api_versions_response(error: ErrorCode = ErrorCode.NONE) -> Any:
    codec = HANDLERS[API_VERSIONS_KEY].codec
    keys = [
        codec.Response.ApiVersion(api_key=h.api.key, min_version=h.min_version, max_version=h.max_version)
        for h in sorted(HANDLERS.values(), key=lambda h: h.api.key)
    ]
    return codec.Response(error_code=int(error), api_keys=keys, throttle_time_ms=0)

