"""Requests of the newest API versions, written and read by kio (Aiven's generated
Kafka message classes), an implementation independent of Moldau's own codec.

raw_kafka.py writes frames by hand for the versions that need malformed bytes; this
is for well-formed requests of versions no client library at hand sends (Produce and
Fetch by topic id, DescribeTopicPartitions, client telemetry, ...).
"""

from __future__ import annotations

import importlib
import io
import itertools
import socket
from typing import Any

from kio.schema.index import api_key_map
from kio.serial import entity_reader, entity_writer

from .raw_kafka import connect, recv_exact

_correlation = itertools.count(1)


def _response_class(request: Any) -> type:
    module = api_key_map[int(request.__api_key__)]
    found = importlib.import_module(f"kio.schema.{module}.v{int(request.__version__)}.response")
    name = type(request).__name__.removesuffix("Request") + "Response"
    return getattr(found, name)  # type: ignore[no-any-return]


def encode(request: Any, correlation_id: int, client_id: str = "kio-wire") -> bytes:
    """The size-prefixed frame of ``request`` with its request header."""
    header_cls = request.__header_schema__
    header = header_cls(
        request_api_key=request.__api_key__,
        request_api_version=request.__version__,
        correlation_id=correlation_id,
        client_id=client_id,
    )
    body = io.BytesIO()
    entity_writer(header_cls)(body, header)
    entity_writer(type(request))(body, request)
    data = body.getvalue()
    return len(data).to_bytes(4, "big") + data


def decode(request: Any, frame: bytes) -> Any:
    """The response to ``request`` in ``frame`` (the bytes after the size prefix, header
    included)."""
    cls = _response_class(request)
    header_cls = cls.__header_schema__
    view = memoryview(frame)
    header, used = entity_reader(header_cls)(view, 0)
    response, _ = entity_reader(cls)(view, used)
    return response


def call(bootstrap: str | socket.socket, request: Any, timeout: float = 15.0) -> Any:
    """Send ``request`` (on a new connection, or the given socket) and read its answer."""
    sock = connect(bootstrap, timeout) if isinstance(bootstrap, str) else bootstrap
    try:
        correlation_id = next(_correlation)
        sock.sendall(encode(request, correlation_id))
        size = recv_exact(sock, 4)
        assert size is not None, "the broker closed the connection"
        frame = recv_exact(sock, int.from_bytes(size, "big"))
        assert frame is not None, "the broker closed the connection"
        assert int.from_bytes(frame[:4], "big") == correlation_id
        return decode(request, frame)
    finally:
        if isinstance(bootstrap, str):
            sock.close()
