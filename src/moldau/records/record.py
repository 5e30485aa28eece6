"""Individual records inside a v2 batch: varints, decoding, and building batches.

The broker's produce and fetch paths never come here (see :mod:`.batch`); this is
for the places that must look inside a batch -- coordinators reading their internal
topics, the log cleaner, keyless-record checks on compacted topics, the CLI, tests
-- and for code that writes batches of its own (coordinators, control markers).

Record v2 layout (varints are zigzag-encoded, as in protobuf ``sint``)::

    length          varint   bytes after this field
    attributes      int8     unused, 0
    timestampDelta  varlong  relative to the batch's baseTimestamp
    offsetDelta     varint   relative to the batch's baseOffset
    keyLength       varint   -1 for a null key
    key             bytes
    valueLength     varint   -1 for a null value
    value           bytes
    headerCount     varint
    headers         headerKeyLength varint, headerKey UTF-8,
                    headerValueLength varint (-1: null), headerValue bytes

Header keys are decoded with ``errors="surrogateescape"`` and encoded the same way,
so keys that are not valid UTF-8 survive a decode/build round trip unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from moldau.records.batch import (
    _HEADER,
    ATTRIBUTES_OFFSET,
    BATCH_OVERHEAD,
    CONTROL_FLAG_MASK,
    CRC_OFFSET,
    CURRENT_MAGIC,
    LOG_OVERHEAD,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    NO_TIMESTAMP,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_FLAG_MASK,
    BatchView,
    Compression,
    TimestampType,
    _crc_of,
    _pack_u32,
)
from moldau.records.codecs import compress, decompress
from moldau.records.errors import CorruptRecordError

__all__ = [
    "Header",
    "Record",
    "RecordInput",
    "append_unsigned_varint",
    "append_varint",
    "build_batch",
    "decode_records",
    "decode_unsigned_varint",
    "decode_varint",
    "encode_unsigned_varint",
    "encode_varint",
    "has_keyless_record",
    "size_of_unsigned_varint",
    "size_of_varint",
    "zigzag_decode",
    "zigzag_encode",
]

Header: TypeAlias = tuple[str, bytes | None]

#: A varlong takes at most 10 bytes (64 bits in 7-bit groups).
_MAX_VARINT_BYTES = 10
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
#: Smallest record body after the length varint: attributes, timestampDelta,
#: offsetDelta, keyLength, valueLength, headerCount, one byte each.
MIN_RECORD_BODY = 6

# ==================================================================================
# Varints
# ==================================================================================


def zigzag_encode(value: int) -> int:
    """Map a signed 64-bit integer to unsigned so small magnitudes stay small."""
    return (value << 1) ^ (value >> 63)


def zigzag_decode(value: int) -> int:
    """Inverse of :func:`zigzag_encode`."""
    return (value >> 1) ^ -(value & 1)


def append_unsigned_varint(out: bytearray, value: int) -> None:
    """Append ``value`` (>= 0) as an unsigned LEB128 varint to ``out``."""
    if value < 0:
        raise ValueError(f"unsigned varint cannot be negative: {value}")
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def append_varint(out: bytearray, value: int) -> None:
    """Append a signed (zigzag) varint/varlong to ``out``; ``value`` must fit int64."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"varint out of int64 range: {value}")
    value = (value << 1) ^ (value >> 63)
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def encode_unsigned_varint(value: int) -> bytes:
    """``value`` (>= 0) as unsigned varint bytes (the protocol's UNSIGNED_VARINT)."""
    out = bytearray()
    append_unsigned_varint(out, value)
    return bytes(out)


def encode_varint(value: int) -> bytes:
    """``value`` as zigzag varint bytes (the protocol's VARINT and VARLONG)."""
    out = bytearray()
    append_varint(out, value)
    return bytes(out)


def decode_unsigned_varint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Read an unsigned varint at ``pos``; return ``(value, position after it)``.

    Raises :class:`CorruptRecordError` if the buffer ends inside the varint or the
    varint is longer than 10 bytes.
    """
    try:
        byte = buf[pos]
        if byte < 0x80:
            return byte, pos + 1
        result = byte & 0x7F
        shift = 7
        for i in range(pos + 1, pos + _MAX_VARINT_BYTES):
            byte = buf[i]
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, i + 1
            shift += 7
    except IndexError:
        raise CorruptRecordError(f"truncated varint at position {pos}") from None
    raise CorruptRecordError(f"varint longer than {_MAX_VARINT_BYTES} bytes at position {pos}")


def decode_varint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Read a zigzag varint/varlong at ``pos``; return ``(value, position after it)``."""
    value, pos = decode_unsigned_varint(buf, pos)
    return (value >> 1) ^ -(value & 1), pos


def size_of_unsigned_varint(value: int) -> int:
    """Bytes :func:`encode_unsigned_varint` would produce for ``value``."""
    return max(1, (value.bit_length() + 6) // 7)


def size_of_varint(value: int) -> int:
    """Bytes :func:`encode_varint` would produce for ``value``."""
    return size_of_unsigned_varint((value << 1) ^ (value >> 63))


# ==================================================================================
# Records
# ==================================================================================


@dataclass(slots=True)
class Record:
    """One decoded record, with absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]


@dataclass(slots=True, frozen=True)
class RecordInput:
    """One record to write with :func:`build_batch`.

    ``offset_delta`` (relative to the batch's base offset) defaults to the record's
    index in the batch; give it to keep gaps, e.g. when the log cleaner rewrites a
    batch without the records it dropped.
    """

    key: bytes | None
    value: bytes | None
    headers: Sequence[Header] = ()
    timestamp: int = NO_TIMESTAMP
    offset_delta: int | None = None


def _records_payload(batch: BatchView) -> bytes:
    """The batch's records region, decompressed if needed, as one bytes object."""
    data = batch.records_bytes()
    codec = batch.compression
    if codec == Compression.NONE:
        return bytes(data)
    return decompress(codec, data)


def decode_records(batch: BatchView) -> list[Record]:
    """Decode every record of ``batch`` (decompressing as needed).

    Offsets are absolute (``base_offset + offsetDelta``). Timestamps are absolute
    (``base_timestamp + timestampDelta``), except in LogAppendTime batches, where
    every record's timestamp is the batch's ``max_timestamp`` (what Kafka's readers
    report, since the broker only rewrites the header).

    Raises :class:`CorruptRecordError` if the records do not parse exactly: a
    length that runs past its record or the payload, fewer records than the header
    counts, or bytes left over after the last one.
    """
    header = batch.header()
    data = _records_payload(batch)
    end = len(data)
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    log_append_time = header.max_timestamp if header.attributes & TIMESTAMP_TYPE_MASK else None
    read = decode_varint
    records: list[Record] = []
    append = records.append
    pos = 0
    for _ in range(header.records_count):
        length, pos = read(data, pos)
        record_end = pos + length
        if length < MIN_RECORD_BODY or record_end > end:
            raise CorruptRecordError(f"record length {length} at position {pos} is impossible")
        pos += 1  # attributes: unused in v2
        timestamp_delta, pos = read(data, pos)
        offset_delta, pos = read(data, pos)
        key_length, pos = read(data, pos)
        if key_length < 0:
            key = None
        else:
            if pos + key_length > record_end:
                raise CorruptRecordError(f"key of {key_length} bytes overruns its record")
            key = data[pos : pos + key_length]
            pos += key_length
        value_length, pos = read(data, pos)
        if value_length < 0:
            value = None
        else:
            if pos + value_length > record_end:
                raise CorruptRecordError(f"value of {value_length} bytes overruns its record")
            value = data[pos : pos + value_length]
            pos += value_length
        header_count, pos = read(data, pos)
        if header_count < 0:
            raise CorruptRecordError(f"invalid header count {header_count}")
        headers: list[Header] = []
        for _ in range(header_count):
            header_key_length, pos = read(data, pos)
            if header_key_length < 0 or pos + header_key_length > record_end:
                raise CorruptRecordError(f"invalid header key length {header_key_length}")
            header_key = data[pos : pos + header_key_length].decode("utf-8", "surrogateescape")
            pos += header_key_length
            header_value_length, pos = read(data, pos)
            if header_value_length < 0:
                header_value = None
            else:
                if pos + header_value_length > record_end:
                    raise CorruptRecordError(
                        f"header value of {header_value_length} bytes overruns its record"
                    )
                header_value = data[pos : pos + header_value_length]
                pos += header_value_length
            headers.append((header_key, header_value))
        if pos != record_end:
            raise CorruptRecordError(
                f"record declares {length} bytes but its fields take {length + pos - record_end}"
            )
        append(
            Record(
                base_offset + offset_delta,
                base_timestamp + timestamp_delta if log_append_time is None else log_append_time,
                key,
                value,
                headers,
            )
        )
    if pos != end:
        raise CorruptRecordError(
            f"{end - pos} bytes left after the {header.records_count} records the batch declares"
        )
    return records


def has_keyless_record(batch: BatchView) -> bool:
    """Whether any record in ``batch`` has a null key (refused on compacted topics).

    Skims each record's length and key length without building :class:`Record`
    objects; compressed batches are decompressed. Kafka (``LogValidator``) treats
    only a null key as missing: an empty key is a key.
    """
    data = _records_payload(batch)
    end = len(data)
    read = decode_varint
    pos = 0
    for _ in range(batch.records_count):
        length, pos = read(data, pos)
        record_end = pos + length
        if length < MIN_RECORD_BODY or record_end > end:
            raise CorruptRecordError(f"record length {length} at position {pos} is impossible")
        _, field_pos = read(data, pos + 1)  # timestampDelta, after attributes
        _, field_pos = read(data, field_pos)  # offsetDelta
        key_length, _ = read(data, field_pos)
        if key_length < 0:
            return True
        pos = record_end
    return False


RecordLike: TypeAlias = (
    RecordInput | Record | tuple[bytes | None, bytes | None, Sequence[Header], int]
)


def _encode_record(
    out: bytearray,
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[Header],
) -> None:
    body = bytearray(b"\x00")  # attributes
    append_varint(body, timestamp_delta)
    append_varint(body, offset_delta)
    if key is None:
        body.append(1)  # zigzag(-1)
    else:
        append_varint(body, len(key))
        body += key
    if value is None:
        body.append(1)
    else:
        append_varint(body, len(value))
        body += value
    headers = list(headers)
    append_varint(body, len(headers))
    for header_key, header_value in headers:
        encoded_key = header_key.encode("utf-8", "surrogateescape")
        append_varint(body, len(encoded_key))
        body += encoded_key
        if header_value is None:
            body.append(1)
        else:
            append_varint(body, len(header_value))
            body += header_value
    append_varint(out, len(body))
    out += body


def build_batch(
    records: Sequence[RecordLike],
    *,
    base_offset: int = 0,
    compression: Compression = Compression.NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    is_transactional: bool = False,
    is_control: bool = False,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    compression_level: int | None = None,
) -> bytes:
    """Encode ``records`` as one complete v2 batch, CRC included.

    ``records`` items may be :class:`RecordInput`, ``(key, value, headers,
    timestamp)`` tuples, or decoded :class:`Record` objects (whose absolute
    ``offset`` then fixes the offset delta, ``offset - base_offset``, so a batch can
    be rebuilt with its original offsets). Offset deltas must be increasing.

    As in Kafka's ``MemoryRecordsBuilder``, baseTimestamp is the first record's
    timestamp and maxTimestamp the largest. For a LogAppendTime batch, pass the
    append time as every record's timestamp (or use
    :func:`moldau.records.batch.set_log_append_time` afterwards).

    The records are always compressed when a codec is given, even if that does
    not save space, so the batch says what the caller asked for.
    """
    if not records:
        raise ValueError("a record batch needs at least one record")
    normalized: list[tuple[int, int, bytes | None, bytes | None, Iterable[Header]]] = []
    for index, item in enumerate(records):
        if isinstance(item, RecordInput):
            delta = index if item.offset_delta is None else item.offset_delta
            normalized.append((delta, item.timestamp, item.key, item.value, item.headers))
        elif isinstance(item, Record):
            normalized.append(
                (item.offset - base_offset, item.timestamp, item.key, item.value, item.headers)
            )
        else:
            key, value, headers, timestamp = item
            normalized.append((index, timestamp, key, value, headers))

    base_timestamp = normalized[0][1]
    max_timestamp = max(entry[1] for entry in normalized)
    previous_delta = -1
    body = bytearray()
    for offset_delta, timestamp, key, value, headers in normalized:
        if offset_delta <= previous_delta:
            raise ValueError(
                f"offset deltas must increase: {offset_delta} follows {previous_delta}"
            )
        previous_delta = offset_delta
        _encode_record(body, offset_delta, timestamp - base_timestamp, key, value, headers)

    payload: bytes | bytearray = body
    if compression != Compression.NONE:
        payload = compress(compression, body, level=compression_level)

    attributes = int(compression) | (int(timestamp_type) << 3)
    if is_transactional:
        attributes |= TRANSACTIONAL_FLAG_MASK
    if is_control:
        attributes |= CONTROL_FLAG_MASK

    out = bytearray(BATCH_OVERHEAD + len(payload))
    _HEADER.pack_into(
        out,
        0,
        base_offset,
        BATCH_OVERHEAD - LOG_OVERHEAD + len(payload),
        partition_leader_epoch,
        CURRENT_MAGIC,
        0,  # CRC, computed below over the finished bytes
        attributes,
        previous_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(normalized),
    )
    out[BATCH_OVERHEAD:] = payload
    view = memoryview(out)
    _pack_u32(view, CRC_OFFSET, _crc_of(view, ATTRIBUTES_OFFSET, len(out)))
    view.release()
    return bytes(out)
