"""Builders for record-validation tests: sound and broken batches, and the walk fixture.

Shared by tests/records, tests/storage and tests/replication (imported as
``tests.records.builders``); the ``impl`` fixture (tests/conftest.py) runs a test once
per implementation of the walk.
"""

from __future__ import annotations

import struct

from moldau.records import (
    ATTRIBUTES_OFFSET,
    BATCH_OVERHEAD,
    CRC_OFFSET,
    LOG_OVERHEAD,
    Compression,
    compress,
    encode_varint,
    validate_batches,
    validation,
)
from moldau.records.batch import _HEADER, _crc_of
from moldau.records.validation import validate_records


def record_bytes(
    offset_delta: int,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    *,
    timestamp_delta: int = 0,
    headers: list[tuple[bytes, bytes | None]] = (),  # type: ignore[assignment]
    raw_body: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """One encoded v2 record; ``raw_body``/``length`` override what would be right."""
    if raw_body is None:
        body = bytearray(b"\x00")
        body += encode_varint(timestamp_delta) + encode_varint(offset_delta)
        body += encode_varint(-1) if key is None else encode_varint(len(key)) + key
        body += encode_varint(-1) if value is None else encode_varint(len(value)) + value
        body += encode_varint(len(headers))
        for hk, hv in headers:
            body += encode_varint(len(hk)) + hk
            body += encode_varint(-1) if hv is None else encode_varint(len(hv)) + hv
        raw_body = bytes(body)
    return encode_varint(len(raw_body) if length is None else length) + raw_body


def batch_of(
    payload: bytes,
    count: int,
    *,
    codec: Compression = Compression.NONE,
    base_timestamp: int = 1_000,
    max_timestamp: int = 1_000,
    producer_id: int = -1,
    base_sequence: int = -1,
    attributes: int = 0,
) -> bytearray:
    """A batch with ``payload`` as its records region, headers and CRC consistent."""
    data = payload if codec == Compression.NONE else compress(codec, payload)
    out = bytearray(BATCH_OVERHEAD + len(data))
    _HEADER.pack_into(
        out, 0, 0, BATCH_OVERHEAD - LOG_OVERHEAD + len(data), -1, 2, 0,
        attributes | int(codec), count - 1, base_timestamp, max_timestamp,
        producer_id, 0, base_sequence, count,
    )  # fmt: skip
    out[BATCH_OVERHEAD:] = data
    struct.pack_into(">I", out, CRC_OFFSET, _crc_of(memoryview(out), ATTRIBUTES_OFFSET, len(out)))
    return out


def records(n: int, **kw: object) -> bytes:
    return b"".join(record_bytes(i, **kw) for i in range(n))  # type: ignore[arg-type]


def check(buf: bytearray, **kw: object) -> validation.RecordsSummary:
    """What the log does: headers and CRC first, then every record."""
    validate_batches(buf)
    return validate_records(buf, **kw)  # type: ignore[arg-type]


