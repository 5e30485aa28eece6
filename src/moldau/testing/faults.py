"""Fault injection: what a test asks a broker to do wrong, consulted per request.

Theory of operation: the dispatcher (:class:`moldau.handlers.registry.Dispatcher`) has
a ``faults`` attribute, None in service. An embedded or test-controlled broker sets it
to a :class:`FaultInjector`; then every decoded request goes through
:meth:`FaultInjector.intercept`, which either answers it itself (an injected error, an
answer held back while paused or delayed) or hands it to ``dispatcher.answer`` as
usual. Everything here runs on the broker's event loop; the test side reaches it
through :mod:`moldau.testing.control`.

The model is librdkafka's mock cluster: ``rd_kafka_mock_push_request_errors`` (the next
N requests of an API answer these errors, in order), ``..._push_request_error_rtts``
(the same, each after a delay), ``rd_kafka_mock_broker_set_rtt`` (latency), and
``rd_kafka_mock_broker_set_down`` (connections cut). An injected error is a well-formed
response of that API and version carrying the error everywhere a client looks: the
top-level ``error_code`` and the one of every topic, partition or group the request
named (see :func:`error_answer`).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Any

from moldau.protocol.codec import Struct
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

#: Fields that name what an entry is about, grouped by meaning: a request entry and a
#: response entry correspond when they share one of these groups (Produce's
#: ``topic_data[].name`` -> ``responses[].name``, Fetch's ``partitions[].partition`` ->
#: ``partitions[].partition_index``, ...).
_KEYS: tuple[frozenset[str], ...] = (
    frozenset({"name", "topic", "topic_name"}),
    frozenset({"topic_id"}),
    frozenset({"index", "partition", "partition_index", "partition_id"}),
    frozenset({"group_id"}),
    frozenset({"transactional_id"}),
    frozenset({"resource_name"}),
    frozenset({"resource_type"}),
    frozenset({"member_id"}),
    frozenset({"group_instance_id"}),
    frozenset({"key"}),
)
#: APIs whose top-level error_code means something else than the request's failure
#: (Fetch's is about fetch sessions): the error goes to their entries only, unless the
#: request named none.
_ENTRY_ERRORS_ONLY = frozenset({"Fetch"})


def error_code(error: str | int | ErrorCode) -> ErrorCode:
    """``"NOT_LEADER_OR_FOLLOWER"``, ``6`` or ``ErrorCode.NOT_LEADER_OR_FOLLOWER``."""
    if isinstance(error, str):
        try:
            return ErrorCode[error.upper()]
        except KeyError:
            raise ValueError(f"unknown Kafka error {error!r}") from None
    return ErrorCode(error)


def api_key(api: str | int) -> int:
    """An API by Kafka's name (``"Produce"``, ``"OffsetCommit"``) or key."""
    if isinstance(api, int):
        if api not in ALL_APIS:
            raise ValueError(f"unknown API key {api}")
        return api
    wanted = api.replace("_", "").lower()
    for key, spec in ALL_APIS.items():
        if spec.name.lower() == wanted:
            return key
    raise ValueError(f"unknown API {api!r}")


def _key_fields(cls: type[Struct]) -> dict[frozenset[str], str]:
    names = {f.name for f in cls._fields}
    return {group: name for group in _KEYS for name in group & names}


def _struct_arrays(cls: type[Struct]) -> list[Any]:
    return [f for f in cls._fields if f.is_array and f.is_struct]


def _mirror(request: Any, cls: type[Struct], code: int, top: bool, entries_only: bool) -> Any:
    """A ``cls`` answering ``request``: keys copied, ``code`` in every error_code, and
    one entry for every entry of the request array that corresponds to each array."""
    out = cls()
    named_entries = False
    for f in cls._fields:
        if f.name == "error_code" and not (top and entries_only):
            out.error_code = code
        elif f.is_array and f.is_struct and request is not None:
            sub = cls.of(f.name)
            keys = _key_fields(sub)
            for rf in _struct_arrays(type(request)):
                items = getattr(request, rf.name) or []
                req_keys = _key_fields(type(request).of(rf.name))
                shared = [g for g in keys if g in req_keys]
                if not shared:
                    continue
                entries = []
                for item in items:
                    entry = _mirror(item, sub, code, False, False)
                    for g in shared:
                        setattr(entry, keys[g], getattr(item, req_keys[g]))
                    entries.append(entry)
                setattr(out, f.name, entries)
                named_entries = named_entries or bool(entries)
                if entries:
                    break
            if not getattr(out, f.name) and keys:
                entries = _from_names(request, sub, keys, code)
                setattr(out, f.name, entries)
                named_entries = named_entries or bool(entries)
    if top and entries_only and not named_entries and "error_code" in {f.name for f in cls._fields}:
        out.error_code = code
    _fill_string_keys(request, out, code)
    return out


def _from_names(request: Any, cls: type[Struct], keys: dict[frozenset[str], str], code: int) -> list[Any]:
    """Entries for a request that names them in an array of strings (DescribeGroups'
    ``groups``, DeleteTopics' ``topic_names``, DescribeTransactions'
    ``transactional_ids``): one per name, in the entry's first key field."""
    lists = [getattr(request, f.name) for f in type(request)._fields
             if f.is_array and f.type == "string" and getattr(request, f.name)]
    if len(lists) != 1:
        return []
    key_field = next(f.name for f in cls._fields if any(f.name in g for g in keys))
    entries = []
    for name in lists[0]:
        entry = cls()
        setattr(entry, key_field, name)
        if "error_code" in {f.name for f in cls._fields}:
            entry.error_code = code
        entries.append(entry)
    return entries


def _fill_string_keys(request: Any, out: Any, code: int) -> None:
    """FindCoordinator v4+ asks for ``coordinator_keys`` (strings) and answers one
    ``coordinators`` entry per key."""
    keys = getattr(request, "coordinator_keys", None)
    if keys and hasattr(out, "coordinators"):
        Coordinator = type(out).of("coordinators")
        out.coordinators = [Coordinator(key=k, node_id=-1, host="", port=-1, error_code=code) for k in keys]


def error_answer(handler: Any, request: Any, code: ErrorCode) -> Any:
    """``handler``'s API's response to ``request`` with ``code`` wherever an error goes."""
    return _mirror(request, handler.codec.Response, int(code), True, handler.api.name in _ENTRY_ERRORS_ONLY)


@dataclass
class _Pending:
    code: ErrorCode
    delay_s: float = 0.0


class FaultInjector:
    """The faults a test has asked for; one per broker, used on its event loop."""

    def __init__(self) -> None:
        self.errors: dict[int, collections.deque[_Pending]] = {}
        self.latency_s: dict[int | None, float] = {}
        self.resumed = asyncio.Event()
        self.resumed.set()
        #: how many requests each API has seen (for tests of the tests)
        self.seen: collections.Counter[int] = collections.Counter()
        self.injected: collections.Counter[int] = collections.Counter()

    # -- what tests ask -------------------------------------------------------------

    def push_errors(self, api: str | int, errors: list[str | int], delay_ms: float = 0) -> None:
        """The next ``len(errors)`` requests of ``api`` answer these errors, in order."""
        queue = self.errors.setdefault(api_key(api), collections.deque())
        queue.extend(_Pending(error_code(e), delay_ms / 1000) for e in errors)

    def clear_errors(self, api: str | int | None = None) -> None:
        if api is None:
            self.errors.clear()
        else:
            self.errors.pop(api_key(api), None)

    def set_latency(self, api: str | int | None, ms: float) -> None:
        """Hold every answer of ``api`` (all APIs: None) ``ms`` milliseconds; 0 removes."""
        key = None if api is None else api_key(api)
        if ms > 0:
            self.latency_s[key] = ms / 1000
        else:
            self.latency_s.pop(key, None)

    def pause(self) -> None:
        self.resumed.clear()

    def resume(self) -> None:
        self.resumed.set()

    # -- the dispatcher's side --------------------------------------------------------

    def intercept(self, dispatcher: Any, handler: Any, header: Any, request: Any, flexible: bool) -> Any:
        key = header.api_key
        self.seen[key] += 1
        queue = self.errors.get(key)
        pending = queue.popleft() if queue else None
        delay = pending.delay_s if pending is not None else self.latency_s.get(key, self.latency_s.get(None, 0.0))
        if pending is not None:
            self.injected[key] += 1
            response = error_answer(handler, request, pending.code)
            if not delay and self.resumed.is_set():
                return dispatcher.encode(handler, header, response, flexible)
            return self._later(dispatcher.encode, delay, handler, header, response, flexible)
        if not delay and self.resumed.is_set():
            return dispatcher.answer(handler, header, request, flexible)
        return self._later(self._answer, delay, dispatcher, handler, header, request, flexible)

    @staticmethod
    async def _answer(dispatcher: Any, handler: Any, header: Any, request: Any, flexible: bool) -> Any:
        answer = dispatcher.answer(handler, header, request, flexible)
        while asyncio.iscoroutine(answer) or isinstance(answer, asyncio.Future) or hasattr(answer, "awaitable"):
            answer = await (answer.awaitable if hasattr(answer, "awaitable") else answer)
        return answer

    async def _later(self, fn: Any, delay: float, *args: Any) -> Any:
        await self.resumed.wait()
        if delay:
            await asyncio.sleep(delay)
        await self.resumed.wait()
        result = fn(*args)
        if asyncio.iscoroutine(result):
            result = await result
        return result
