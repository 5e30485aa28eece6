"""The table of API handlers, and the dispatcher that turns frames into answers.

What ApiVersions advertises is built from this table, so it is by construction what
is implemented: an API is served exactly when a handler for it is registered, over the
versions the handler declares. A request for an API or version we do not serve, or one
that does not decode, is answered with Kafka's error for it where the protocol allows
and the connection is closed otherwise; an exception inside a handler becomes
UNKNOWN_SERVER_ERROR for that request and never poisons the broker.

Large requests are decoded, and their answers encoded, in a worker thread
(:meth:`Dispatcher._answer_offloaded`). Decoding costs about a microsecond per array
entry, and ``socket.request.max.bytes`` (100 MiB) lets a legitimate request carry tens
of millions of entries: seconds of work that would hold the one event loop every
connection shares. Capping arrays per API would refuse requests Kafka serves, and the
codec already refuses an array longer than the bytes left in the frame; what it cannot
bound is time. In a thread, the work only competes for the GIL, which the event loop
gets back at least every ``sys.getswitchinterval()`` (5 ms), so other clients keep
being served while the big request decodes. Frames below :data:`OFFLOAD_FRAME_BYTES`
(at most ~100 ms to decode even at one entry per byte) stay on the loop, as do Produce
frames with few entries (:func:`~moldau.protocol.peek.produce_entries`), whatever
their size: record data is not decoded, and the hot path must not pay a thread hop.
Handlers walk what was decoded with :mod:`moldau.handlers.pacing`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moldau.log_throttle import ThrottledLog
from moldau.protocol.codec import MessageCodec, codec_for
from moldau.protocol.errors import ErrorCode, KafkaError, ProtocolDecodeError, to_kafka_error
from moldau.protocol.header import (
    API_VERSIONS_KEY,
    RequestHeader,
    decode_request_header,
    peek_api,
    response_header,
)
from moldau.protocol.peek import produce_entries
from moldau.protocol.schema import Api
from moldau.security.quotas import REQUEST_PERCENTAGE, throttle
from moldau.server.connection import LaterAnswer

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

log = logging.getLogger(__name__)
# a client chooses how often it sends what we cannot read: at most 10 lines a minute
closing_log = ThrottledLog(log, "connections closed on unreadable requests")

HandlerFn = Callable[["Broker", RequestHeader, Any], Any]

PRODUCE_KEY = 0
#: not counted against request_percentage (Kafka exempts what a client needs to connect)
REQUEST_QUOTA_EXEMPT = frozenset({17, 18, 36})  # SaslHandshake, ApiVersions, SaslAuthenticate
#: Frames from this size on are decoded and answered off the event loop (see above).
OFFLOAD_FRAME_BYTES = 64 * 1024
#: Produce frames are, only if they hold more topic and partition entries than this.
OFFLOAD_PRODUCE_ENTRIES = 1000


@dataclass
class Handler:
    api: Api
    codec: MessageCodec
    min_version: int
    max_version: int
    fn: HandlerFn
    is_async: bool
    #: An async variant for offloaded (large) requests, for APIs whose everyday handler
    #: is synchronous because it is on the hot path (Produce): same answers, paced.
    large_fn: HandlerFn | None = None


HANDLERS: dict[int, Handler] = {}


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


def large_variant(api: Api) -> Callable[[HandlerFn], HandlerFn]:
    """Register ``fn`` (async) as the handler of ``api``'s offloaded requests."""

    def register(fn: HandlerFn) -> HandlerFn:
        if not inspect.iscoroutinefunction(fn):
            raise ValueError(f"{api.name}: the large-request variant must be async")
        HANDLERS[api.key].large_fn = fn
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


def listener_of(header: Any) -> str | None:
    """The listener the request came in on (None for requests made in tests without one)."""
    connection = getattr(header, "connection", None)
    return getattr(connection, "listener_name", None)


def raw_sasl_token(authenticator: Any, frame: bytearray, connection: Any) -> Any:
    """After a v0 SaslHandshake the exchange is bare tokens, size-prefixed, no header;
    a failure closes the connection (the v0 framing has no way to say why)."""
    from moldau.security.authenticator import AuthenticationFailed

    try:
        answer = authenticator.authenticate(bytes(frame))
    except AuthenticationFailed as exc:
        closing_log("closing %s: SASL authentication failed: %s", connection.peer, exc)
        connection.close()
        return None
    connection.principal = authenticator.principal or connection.principal
    return [len(answer).to_bytes(4, "big") + answer]


class Dispatcher:
    """Decodes a frame, calls the handler, encodes the answer (or its awaitable)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        #: Test-only control surface: an object whose ``intercept(dispatcher, handler,
        #: header, request, flexible)`` answers every decoded request in place of
        #: :meth:`answer` (see :mod:`moldau.testing.faults`). None in service, where it
        #: costs one attribute check per request.
        self.faults: Any = None
        #: the broker's counters when metrics are on (then ``measured`` is the entry)
        self.stats = broker.stats if broker.stats.enabled else None

    def measured(self, frame: bytearray, connection: Any) -> Any:
        """:meth:`__call__`, timing each request until its answer is ready (the
        listener calls this instead when metrics are on: off, nothing is paid)."""
        start = time.perf_counter()
        result = self(frame, connection)
        if len(frame) < 2:
            return result
        api_key = (frame[0] << 8) | frame[1]
        if result is None or isinstance(result, list):
            self.broker.stats.request_done(api_key, time.perf_counter() - start)
            return result
        if isinstance(result, LaterAnswer):
            pending = result.awaitable
            if isinstance(pending, asyncio.Future):
                pending.add_done_callback(lambda _f: self.broker.stats.request_done(api_key, time.perf_counter() - start))
                return result
            return LaterAnswer(_timed_answer(pending, self.broker.stats, api_key, start))
        return _timed_answer(result, self.broker.stats, api_key, start)

    def __call__(self, frame: bytearray, connection: Any) -> Any:
        authenticator = getattr(connection, "authenticator", None)
        if authenticator is not None and authenticator.raw_tokens:
            return raw_sasl_token(authenticator, frame, connection)
        try:
            api_key, api_version, correlation_id = peek_api(frame)
        except ProtocolDecodeError:
            closing_log("closing %s: request too short for a header", connection.peer)
            connection.close()
            return None
        if authenticator is not None and not authenticator.allows(api_key):
            # Kafka closes a SASL connection that sends anything else before (or, with
            # KIP-368, after its session expired without) authenticating. Closed on the
            # next turn of the loop, so the answers already due (a failed
            # authentication's error) still go out; nothing after this is served.
            if authenticator.state != "failed":
                closing_log("closing %s: API key %d before SASL authentication completed (or after "
                            "its session expired)", connection.peer, api_key)
                authenticator.fail()
                asyncio.get_running_loop().call_soon(connection.close)
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
            if self._offload(api_key, api_version, flexible, frame, header.header_size):
                return self._answer_offloaded(handler, header, frame, flexible, connection)
            request = handler.codec.decode_request(api_version, frame, header.header_size)
        except ProtocolDecodeError as exc:
            closing_log("closing %s: %s", connection.peer, exc)
            connection.close()
            return None
        header.connection = connection
        if self.faults is not None:  # a test's fault injector (moldau.testing); None in service
            return self.faults.intercept(self, handler, header, request, flexible)
        return self.answer(handler, header, request, flexible)

    def answer(self, handler: Handler, header: RequestHeader, request: Any, flexible: bool) -> Any:
        """Handle a decoded request: its encoded answer, an awaitable of it, or None."""
        if REQUEST_PERCENTAGE in self.broker.quotas.active and header.api_key not in REQUEST_QUOTA_EXEMPT:
            return self._answer_timed(handler, header, request, flexible)
        if handler.is_async:
            return self._answer_later(handler, header, request, flexible)
        response = _call_sync(handler, self.broker, header, request)
        if response is None:
            return None
        if isinstance(response, asyncio.Future):
            # a synchronous handler that must wait after all (an acks=all produce): it
            # has done all it changes, so the connection may handle the next requests
            # while it waits (their answers go out after its own)
            return LaterAnswer(self._encode_when_done(handler, header, request, response, flexible))
        if inspect.iscoroutine(response):
            return LaterAnswer(self._encode_later(handler, header, request, response, flexible))
        return self.encode(handler, header, response, flexible)

    async def _encode_later(
        self, handler: Handler, header: RequestHeader, request: Any, pending: Any, flexible: bool
    ) -> Any:
        return self.encode(handler, header, await _settle(handler, request, pending), flexible)

    def _answer_timed(self, handler: Handler, header: RequestHeader, request: Any, flexible: bool) -> Any:
        """Answer as usual, measuring the time the handler holds the event loop (every
        step of an async handler, not its waits), for ``request_percentage`` quotas."""
        spent = [0.0]
        if handler.is_async:
            pending = _Timed(_call_async(handler, handler.fn, self.broker, header, request), spent)
            return self._finish_timed(handler, header, pending, spent, flexible)
        start = time.perf_counter()
        response = _call_sync(handler, self.broker, header, request)
        spent[0] += time.perf_counter() - start
        if inspect.iscoroutine(response) or isinstance(response, asyncio.Future):
            return self._finish_timed(handler, header, _Timed(_settle(handler, request, response), spent), spent, flexible)
        self._charge_request_time(header, response, spent[0])
        return None if response is None else self.encode(handler, header, response, flexible)

    async def _finish_timed(
        self, handler: Handler, header: RequestHeader, pending: Any, spent: list[float], flexible: bool
    ) -> Any:
        response = await pending
        self._charge_request_time(header, response, spent[0])
        return None if response is None else self.encode(handler, header, response, flexible)

    def _charge_request_time(self, header: RequestHeader, response: Any, seconds: float) -> None:
        """Count handler time against ``request_percentage`` (percent of one thread);
        over it, the answer carries the throttle time and the connection is muted."""
        throttle_ms = self.broker.quotas.record(
            REQUEST_PERCENTAGE, header.connection.principal, header.client_id, seconds * 100)
        if throttle_ms <= 0:
            return
        throttle(header, throttle_ms)
        if response is not None and any(f.name == "throttle_time_ms" for f in response._fields):
            response.throttle_time_ms = max(response.throttle_time_ms or 0, throttle_ms)
    def _encode_when_done(
        self, handler: Handler, header: RequestHeader, request: Any, pending: asyncio.Future[Any], flexible: bool
    ) -> asyncio.Future[Any]:
        """The encoded answer of a handler's future, as a future (no task)."""
        out: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(fut: asyncio.Future[Any]) -> None:
            if out.done():
                return
            try:
                response = fut.result()
            except BaseException:  # noqa: BLE001 - cancelled or failed: the request's error
                response = _failed(handler, request)
            out.set_result(self.encode(handler, header, response, flexible))

        pending.add_done_callback(done)
        return out

    @staticmethod
    def _offload(api_key: int, version: int, flexible: bool, frame: bytearray, body: int) -> bool:
        if len(frame) < OFFLOAD_FRAME_BYTES:
            return False
        if api_key != PRODUCE_KEY:
            return True
        return produce_entries(frame, body, version, flexible, OFFLOAD_PRODUCE_ENTRIES) > OFFLOAD_PRODUCE_ENTRIES

    async def _answer_offloaded(
        self, handler: Handler, header: RequestHeader, frame: bytearray, flexible: bool, connection: Any
    ) -> Any:
        """Decode in a worker thread, handle on the loop, encode in a worker thread."""
        try:
            request = await asyncio.to_thread(handler.codec.decode_request, header.api_version, frame, header.header_size)
        except ProtocolDecodeError as exc:
            closing_log("closing %s: %s", connection.peer, exc)
            connection.close()
            return None
        header.connection = connection
        if handler.large_fn is not None:
            response = await _call_async(handler, handler.large_fn, self.broker, header, request)
        elif handler.is_async:
            response = await _call_async(handler, handler.fn, self.broker, header, request)
        else:
            response = _call_sync(handler, self.broker, header, request)
            if inspect.iscoroutine(response) or isinstance(response, asyncio.Future):
                response = await _settle(handler, request, response)
        if response is None:
            return None
        return await asyncio.to_thread(self.encode, handler, header, response, flexible)

    async def _answer_later(self, handler: Handler, header: RequestHeader, request: Any, flexible: bool) -> Any:
        response = await _call_async(handler, handler.fn, self.broker, header, request)
        if response is None:
            return None
        return self.encode(handler, header, response, flexible)

    def encode(self, handler: Handler, header: RequestHeader, response: Any, flexible: bool) -> list[Any]:
        if self.stats is not None and handler.api.key not in COUNTED_IN_HANDLER:
            count_errors(self.stats, handler.api.key, response)
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


async def _timed_answer(pending: Any, stats: Any, api_key: int, start: float) -> Any:
    try:
        return await pending
    finally:
        stats.request_done(api_key, time.perf_counter() - start)


#: APIs whose handlers count their own errors (the hot paths: a walk over the answer
#: would cost per partition what a few lines in the handler's error branch cost once)
COUNTED_IN_HANDLER = frozenset({PRODUCE_KEY, 1})


def count_errors(stats: Any, api_key: int, response: Any, depth: int = 0) -> None:
    """Count every non-zero ``error_code`` in an answer, at any level (Kafka's
    ``errorCounts``): a topic's, a partition's, the answer's own."""
    for field in response._fields:
        value = getattr(response, field.name, None)
        if field.name == "error_code":
            if value:
                stats.error(api_key, value)
        elif isinstance(value, list) and value and hasattr(value[0], "_fields") and depth < 4:
            for item in value:
                count_errors(stats, api_key, item, depth + 1)


class _Timed:
    """Awaits a coroutine, adding to ``spent[0]`` the time each of its steps runs (the
    time it holds the event loop), not the time it waits."""

    __slots__ = ("_coro", "_spent")

    def __init__(self, coro: Any, spent: list[float]) -> None:
        self._coro = coro
        self._spent = spent

    def __await__(self) -> Any:
        coro, spent = self._coro, self._spent
        value: Any = None
        error: BaseException | None = None
        while True:
            start = time.perf_counter()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                spent[0] += time.perf_counter() - start
                return done.value
            spent[0] += time.perf_counter() - start
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and the like go to the coroutine
                value, error = None, exc


def item_error(raised: BaseException, logger: logging.Logger, what: str = "answering one item", *args: Any) -> KafkaError:
    """The Kafka error one item of an answer carries for ``raised``: its own code for the
    errors that have one, UNKNOWN_SERVER_ERROR (and a logged traceback) for the rest."""
    exc = to_kafka_error(raised)
    if exc.code == ErrorCode.UNKNOWN_SERVER_ERROR:
        logger.exception("unexpected error " + what, *args)
    return exc


def _failed(handler: Handler, request: Any) -> Any:
    """An unexpected exception in a handler: logged, and UNKNOWN_SERVER_ERROR for the request."""
    log.exception("%s handler failed", handler.api.name)
    return error_response(handler, request, ErrorCode.UNKNOWN_SERVER_ERROR)


def _call_sync(handler: Handler, broker: Broker, header: RequestHeader, request: Any) -> Any:
    try:
        return handler.fn(broker, header, request)
    except Exception:
        return _failed(handler, request)


async def _settle(handler: Handler, request: Any, pending: Any) -> Any:
    """Await a handler's answer; an exception on the way becomes UNKNOWN_SERVER_ERROR."""
    try:
        return await pending
    except Exception:
        return _failed(handler, request)


async def _call_async(handler: Handler, fn: Any, broker: Broker, header: RequestHeader, request: Any) -> Any:
    return await _settle(handler, request, fn(broker, header, request))


def api_versions_response(error: ErrorCode = ErrorCode.NONE) -> Any:
    codec = HANDLERS[API_VERSIONS_KEY].codec
    keys = [
        codec.Response.ApiVersion(api_key=h.api.key, min_version=h.min_version, max_version=h.max_version)
        for h in sorted(HANDLERS.values(), key=lambda h: h.api.key)
    ]
    return codec.Response(error_code=int(error), api_keys=keys, throttle_time_ms=0)

