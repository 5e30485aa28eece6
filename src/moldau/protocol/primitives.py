"""Readers and writers of the Kafka protocol's primitive types.

The generated codecs in :mod:`moldau.protocol.codec` call these; they are small and
allocation-light because every request and response goes through them. Readers take
``(buf, pos)`` and return ``(value, new_pos)``; writers append to a ``bytearray``.
Record data is never copied on read: ``records`` fields come back as memoryview slices.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any, Protocol

from moldau.protocol.errors import ProtocolDecodeError

I8 = struct.Struct(">b")
I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
I64 = struct.Struct(">q")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
F64 = struct.Struct(">d")

_i16_pack = I16.pack
_i32_pack = I32.pack


class Chunked(Protocol):
    """Record data handed to the writer as a list of chunks (bytes or file slices)."""

    size: int
    chunks: list[Any]


def write_uvarint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_uvarint(buf: Any, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    try:
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, pos
            shift += 7
            if shift > 35:
                raise ProtocolDecodeError("unsigned varint too long")
    except IndexError:
        raise ProtocolDecodeError("truncated varint") from None


def _check(buf: Any, end: int) -> None:
    if end > len(buf):
        raise ProtocolDecodeError("truncated field")


# strings --------------------------------------------------------------------------


def read_string(buf: Any, pos: int) -> tuple[str | None, int]:
    (length,) = I16.unpack_from(buf, pos)
    pos += 2
    if length < 0:
        return None, pos
    end = pos + length
    _check(buf, end)
    return bytes(buf[pos:end]).decode("utf-8"), end


def read_compact_string(buf: Any, pos: int) -> tuple[str | None, int]:
    length, pos = read_uvarint(buf, pos)
    if length == 0:
        return None, pos
    end = pos + length - 1
    _check(buf, end)
    return bytes(buf[pos:end]).decode("utf-8"), end


def write_string(out: bytearray, value: str | None) -> None:
    if value is None:
        out += b"\xff\xff"
        return
    data = value.encode("utf-8")
    out += _i16_pack(len(data))
    out += data


def write_compact_string(out: bytearray, value: str | None) -> None:
    if value is None:
        out.append(0)
        return
    data = value.encode("utf-8")
    write_uvarint(out, len(data) + 1)
    out += data


# bytes ----------------------------------------------------------------------------


def read_bytes(buf: Any, pos: int) -> tuple[bytes | None, int]:
    (length,) = I32.unpack_from(buf, pos)
    pos += 4
    if length < 0:
        return None, pos
    end = pos + length
    _check(buf, end)
    return bytes(buf[pos:end]), end


def read_compact_bytes(buf: Any, pos: int) -> tuple[bytes | None, int]:
    length, pos = read_uvarint(buf, pos)
    if length == 0:
        return None, pos
    end = pos + length - 1
    _check(buf, end)
    return bytes(buf[pos:end]), end


def write_bytes(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out += b"\xff\xff\xff\xff"
        return
    out += _i32_pack(len(value))
    out += value


def write_compact_bytes(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out.append(0)
        return
    write_uvarint(out, len(value) + 1)
    out += value


# records: zero-copy in both directions ---------------------------------------------


def read_records(buf: Any, pos: int) -> tuple[memoryview | None, int]:
    (length,) = I32.unpack_from(buf, pos)
    pos += 4
    if length < 0:
        return None, pos
    end = pos + length
    _check(buf, end)
    return memoryview(buf)[pos:end], end


def read_compact_records(buf: Any, pos: int) -> tuple[memoryview | None, int]:
    length, pos = read_uvarint(buf, pos)
    if length == 0:
        return None, pos
    end = pos + length - 1
    _check(buf, end)
    return memoryview(buf)[pos:end], end


def write_records(out: bytearray, chunks: list[Any], value: Any, compact: bool) -> None:
    """Write record data; chunked payloads (file slices) are passed through, not copied."""
    if value is None:
        if compact:
            out.append(0)
        else:
            out += b"\xff\xff\xff\xff"
        return
    chunked = hasattr(value, "chunks")
    size = value.size if chunked else len(value)
    if compact:
        write_uvarint(out, size + 1)
    else:
        out += _i32_pack(size)
    if not chunked:
        out += value
        return
    if out:
        chunks.append(bytes(out))
        out.clear()
    chunks.extend(value.chunks)


# uuid -------------------------------------------------------------------------------


def read_uuid(buf: Any, pos: int) -> tuple[uuid.UUID, int]:
    end = pos + 16
    _check(buf, end)
    return uuid.UUID(bytes=bytes(buf[pos:end])), end


def write_uuid(out: bytearray, value: uuid.UUID) -> None:
    out += value.bytes


# tagged fields ----------------------------------------------------------------------


def skip_tagged_fields(buf: Any, pos: int) -> int:
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        _check(buf, pos)
    return pos
