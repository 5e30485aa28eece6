"""Request and response headers, and the size-prefixed frames that carry them.

Request header v0 is (api_key, api_version, correlation_id); v1 adds a nullable
client_id (always a classic int16-length string, even in v2); v2 adds tagged fields.
A request uses header v2 exactly when its API version is flexible. Response header v0
is the correlation id; v1 adds tagged fields for flexible versions -- except for
ApiVersions, whose response header is always v0 so that a client can read the answer
before it knows which versions the broker speaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moldau.protocol import primitives as p
from moldau.protocol.errors import ProtocolDecodeError

API_VERSIONS_KEY = 18


@dataclass(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    header_size: int = 0
    connection: Any = None


def decode_request_header(buf: bytes | bytearray | memoryview, flexible: bool) -> RequestHeader:
    """Decode a request header; ``flexible`` says whether it is header v2."""
    if len(buf) < 8:
        raise ProtocolDecodeError("request shorter than its header")
    api_key, api_version = p.I16.unpack_from(buf, 0)[0], p.I16.unpack_from(buf, 2)[0]
    (correlation_id,) = p.I32.unpack_from(buf, 4)
    pos = 8
    client_id = None
    if len(buf) >= 10:
        try:
            client_id, pos = p.read_string(buf, pos)
        except (UnicodeDecodeError, ProtocolDecodeError):
            raise ProtocolDecodeError("malformed client id") from None
    if flexible:
        pos = p.skip_tagged_fields(buf, pos)
    return RequestHeader(api_key, api_version, correlation_id, client_id, pos)


def peek_api(buf: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) of a request, without decoding the rest."""
    if len(buf) < 8:
        raise ProtocolDecodeError("request shorter than its header")
    return p.I16.unpack_from(buf, 0)[0], p.I16.unpack_from(buf, 2)[0], p.I32.unpack_from(buf, 4)[0]


def response_header(correlation_id: int, flexible: bool) -> bytearray:
    """A response header, with 4 bytes reserved in front for the frame size."""
    out = bytearray(b"\0\0\0\0")
    out += p.I32.pack(correlation_id)
    if flexible:
        out.append(0)
    return out


def encode_request_header(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None, flexible: bool
) -> bytearray:
    """A request header (used by tests and tools that talk to a broker)."""
    out = bytearray()
    out += p.I16.pack(api_key)
    out += p.I16.pack(api_version)
    out += p.I32.pack(correlation_id)
    p.write_string(out, client_id)
    if flexible:
        out.append(0)
    return out
