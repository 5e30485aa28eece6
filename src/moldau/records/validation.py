"""Record validation: walk every record of every batch a producer sends, as Kafka does.

Theory of operation
-------------------
:func:`moldau.records.batch.validate_batches` checks batch *headers* and CRCs; that
is not enough, because a batch whose CRC is right may still hold records that no
reader can parse (a client bug, or a hostile one), and once stored they stall or
crash every consumer of the partition. Kafka's ``LogValidator`` therefore iterates
the records of every batch it appends from a client, decompressing compressed ones;
:func:`validate_records` does the same, after :func:`validate_batches` accepted the
buffer (so lengths, magic and CRC are known good), and before anything is written.

Per batch, in this order:

- a transactional batch must carry a producer id (``INVALID_RECORD``);
- the records region is decompressed if a codec is set; a payload the codec cannot
  read is ``CORRUPT_MESSAGE``, one that would decompress to more than
  :data:`~moldau.records.codecs.MAX_DECOMPRESSED_BATCH_BYTES` is ``MESSAGE_TOO_LARGE``
  (a few KB of zstd can expand to gigabytes);
- the records are walked by :func:`scan`: exactly ``records_count`` records that
  parse exactly (Kafka's ``DefaultRecord.readFrom`` rules: varints of at most 5
  bytes, varlongs of at most 10, lengths inside their record, header counts and key
  sizes not negative, a record length equal to what its fields take), no bytes left
  after the last one, and offset deltas 0, 1, 2, ... in order (the broker keeps a
  producer's batch as sent, so a reader would otherwise see offsets that are not
  the ones assigned). Any defect is ``INVALID_RECORD`` with Kafka's message, as
  Kafka answers (its ``InvalidRecordException``): a Java producer retries
  ``CORRUPT_MESSAGE`` but gives up on ``INVALID_RECORD``, and retrying a malformed
  record cannot help;
- on a compacted topic, records with a null key are refused with
  ``INVALID_RECORD`` *and* per-record errors (:class:`RecordValidationError`), which
  Produce v8+ returns as ``record_errors`` so clients fail those records alone;
- with timestamp bounds (``message.timestamp.before/after.max.ms`` on a CreateTime
  topic), records whose timestamp is outside are refused the same way, with
  ``INVALID_TIMESTAMP`` (Kafka's ``validateTimestamp``; a record gets a key error or
  a timestamp error, not both), and so is a producer batch that claims
  LogAppendTime on a LogAppendTime topic.

What is not refused but corrected, as Kafka does (``DefaultRecordBatch.setMaxTimestamp``
in ``LogValidator``): a CreateTime batch whose maxTimestamp is not the largest record
timestamp gets the right one, and a new CRC. The time index and ListOffsets by
timestamp then agree with the records. All checks run before the first patch, so a
refused buffer is left as it came.

Cost: :func:`scan` is the only per-record code. It exists twice with identical
results: in C (``moldau/records/_scan.c``, built at install when a compiler is
there) and in Python (:func:`_scan_py`), which is used when the extension is
missing or ``MOLDAU_PURE_PYTHON=1`` is set. docs/07-performance.md has the figures.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import NamedTuple

from moldau.records.batch import (
    ATTRIBUTES_OFFSET,
    COMPRESSION_CODEC_MASK,
    CRC_OFFSET,
    LOG_OVERHEAD,
    MAX_TIMESTAMP_OFFSET,
    NO_TIMESTAMP,
    RECORDS_OFFSET,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_FLAG_MASK,
    BatchView,
    TimestampType,
    _as_writable_view,
    _crc_of,
    _pack_i64,
    _pack_u32,
    _unpack_header,
)
from moldau.records.codecs import MAX_DECOMPRESSED_BATCH_BYTES, decompress
from moldau.records.errors import InvalidRecordError, RecordsError
from moldau.records.record import decode_records

__all__ = [
    "IMPLEMENTATION",
    "IMPLEMENTATIONS",
    "RecordValidationError",
    "RecordsSummary",
    "scan",
    "validate_records",
]

ScanResult = tuple[int, int, int, int, int, list[int] | None, list[int] | None]
Scanner = Callable[[object, int, int, bool, int, int], ScanResult]

# Kinds returned by scan(), the same numbers as in _scan.c.
KIND_OK = 0
KIND_EOF = 1
KIND_REMAINING = 2
KIND_STRUCTURE = 3
KIND_SIZE_OVER = 4
KIND_SIZE_MISMATCH = 5
KIND_HEADER_COUNT_NEG = 6
KIND_HEADER_COUNT_BIG = 7
KIND_HEADER_KEY_NEG = 8
KIND_OFFSET_DELTA = 9

#: Kafka's INVALID_TIMESTAMP error code.
INVALID_TIMESTAMP = 32

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_I64_SIGN = 1 << 63
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


class RecordValidationError(RecordsError):
    """Individual records refused, like Kafka's ``RecordValidationException``.

    ``INVALID_RECORD`` (keyless records on a compacted topic) or
    ``INVALID_TIMESTAMP`` (timestamps outside ``message.timestamp.*.max.ms``), in
    :attr:`error_code`. ``record_errors`` lists ``(batch_index, message)`` for each
    refused record, the index counting from 0 within its batch; Produce v8+ answers
    them as ``record_errors``, and librdkafka then fails those records with their
    own error and the others of the batch with its "different record" error.
    """

    def __init__(
        self, message: str, record_errors: list[tuple[int, str]], *, error_code: int = 87
    ) -> None:
        super().__init__(message)
        self.record_errors = record_errors
        self.error_code = error_code


# ==================================================================================
# The per-record walk, in Python (the C twin is moldau.records._scan.scan)
# ==================================================================================


def _scan_py(
    data: object,
    count: int,
    base_timestamp: int,
    check_keys: bool,
    min_timestamp: int,
    max_timestamp: int,
) -> ScanResult:
    """Pure-Python :func:`scan`: same checks, same order, same results as ``_scan.c``.

    Each varint takes the one-byte fast path inline (most fields of most records
    fit in one byte) and :func:`_read_varint` otherwise; both read the same way.
    """
    buf = data if isinstance(data, bytes) else bytes(data)  # type: ignore[call-overload]
    end = len(buf)
    read = _read_varint
    skip = _skip
    pos = 0
    max_ts = NO_TIMESTAMP
    keyless: list[int] | None = [] if check_keys else None
    out_of_range: list[int] = []
    for index in range(count):
        if pos >= end:
            return (KIND_EOF, index, 0, 0, max_ts, None, None)
        # length: a varint, bounded by the payload
        length, pos = read(buf, pos, end, 5, 32)
        if pos == -1:
            return (KIND_EOF, index, 0, 0, max_ts, None, None)
        if pos < 0 or length < 0:
            return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        if length > end - pos:
            return (KIND_SIZE_OVER, index, length, end - pos, max_ts, None, None)
        record_start = pos
        record_end = pos + length
        if length < 2:  # attributes, then at least one byte for the timestamp delta
            return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        pos += 1  # attributes: unused in v2
        byte = buf[pos]
        if byte < 0x80:
            timestamp_delta = (byte >> 1) ^ -(byte & 1)
            pos += 1
        else:
            timestamp_delta, pos = read(buf, pos, record_end, 10, 64)
            if pos < 0:
                return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        byte = buf[pos] if pos < record_end else 0x80
        if byte < 0x80:
            offset_delta = (byte >> 1) ^ -(byte & 1)
            pos += 1
        else:
            offset_delta, pos = read(buf, pos, record_end, 5, 32)
            if pos < 0:
                return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        if offset_delta != index:
            return (KIND_OFFSET_DELTA, index, offset_delta, 0, max_ts, None, None)
        byte = buf[pos] if pos < record_end else 0x80
        if byte < 0x80:
            key_len = (byte >> 1) ^ -(byte & 1)
            pos += 1
        else:
            key_len, pos = read(buf, pos, record_end, 5, 32)
            if pos < 0:
                return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        pos = skip(pos, record_end, key_len)
        if pos < 0:
            return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        value_len, pos = read(buf, pos, record_end, 5, 32)
        if pos < 0:
            return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        pos = skip(pos, record_end, value_len)
        if pos < 0:
            return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        byte = buf[pos] if pos < record_end else 0x80
        if byte < 0x80:
            header_count = (byte >> 1) ^ -(byte & 1)
            pos += 1
        else:
            header_count, pos = read(buf, pos, record_end, 5, 32)
            if pos < 0:
                return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        if header_count:
            if header_count < 0:
                return (KIND_HEADER_COUNT_NEG, index, header_count, 0, max_ts, None, None)
            if header_count > record_end - pos:
                return (KIND_HEADER_COUNT_BIG, index, header_count, 0, max_ts, None, None)
            for _ in range(header_count):
                header_key_len, pos = read(buf, pos, record_end, 5, 32)
                if pos < 0:
                    return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
                if header_key_len < 0:
                    return (KIND_HEADER_KEY_NEG, index, header_key_len, 0, max_ts, None, None)
                pos = skip(pos, record_end, header_key_len)
                if pos < 0:
                    return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
                header_value_len, pos = read(buf, pos, record_end, 5, 32)
                if pos < 0:
                    return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
                pos = skip(pos, record_end, header_value_len)
                if pos < 0:
                    return (KIND_STRUCTURE, index, 0, 0, max_ts, None, None)
        if pos != record_end:
            return (KIND_SIZE_MISMATCH, index, length, pos - record_start, max_ts, None, None)
        # base + delta with Java's long wrap-around
        timestamp = base_timestamp + timestamp_delta
        if not _I64_MIN <= timestamp <= _I64_MAX:
            timestamp = ((timestamp + _I64_SIGN) & _U64) - _I64_SIGN
        if timestamp > max_ts:
            max_ts = timestamp
        if key_len < 0 and keyless is not None:
            keyless.append(index)
        elif timestamp != -1 and (timestamp < min_timestamp or timestamp > max_timestamp):
            out_of_range.append(index)
    if pos != end:
        return (KIND_REMAINING, count, end - pos, 0, max_ts, None, None)
    return (KIND_OK, count, 0, 0, max_ts, keyless, out_of_range)


def _read_varint(buf: bytes, pos: int, end: int, max_bytes: int, bits: int) -> tuple[int, int]:
    """Zigzag varint at ``pos`` as Kafka's ByteUtils reads it; ``(value, next pos)``.

    The position is -1 if ``end`` cuts the varint, -2 if it is longer than
    ``max_bytes``; bits beyond ``bits`` are dropped and the zigzag decoding is done
    in that width, like Java's int and long arithmetic.
    """
    raw = 0
    shift = 0
    for _ in range(max_bytes):
        if pos >= end:
            return 0, -1
        byte = buf[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            mask = _U32 if bits == 32 else _U64
            raw &= mask
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
    return 0, -2


def _skip(pos: int, record_end: int, length: int) -> int:
    """Position after a byte array of ``length`` (-1: null), or -1 if it is invalid."""
    if length < -1:
        return -1
    if length > 0:
        if length > record_end - pos:
            return -1
        pos += length
    return pos


# ==================================================================================
# Choosing the implementation
# ==================================================================================

#: The version of scan()'s arguments and result that this module calls (``ABI`` in
#: _scan.c): a stale build from an older checkout is ignored, not called wrongly.
_SCAN_ABI = 2

IMPLEMENTATIONS: dict[str, Scanner] = {"python": _scan_py}
try:
    from moldau.records import _scan
except ImportError:  # not built (no compiler at install time): the Python twin serves
    pass
else:
    if getattr(_scan, "ABI", None) == _SCAN_ABI:
        IMPLEMENTATIONS["c"] = _scan.scan
    else:
        warnings.warn(
            "moldau.records._scan is a stale build (reinstall with pip install -e .); "
            "using the pure-Python record walk",
            RuntimeWarning,
            stacklevel=1,
        )

#: The walk in use: C when built, unless ``MOLDAU_PURE_PYTHON=1`` forces Python.
IMPLEMENTATION = (
    "c" if "c" in IMPLEMENTATIONS and os.environ.get("MOLDAU_PURE_PYTHON") != "1" else "python"
)
scan: Scanner = IMPLEMENTATIONS[IMPLEMENTATION]


# ==================================================================================
# Validating a buffer of batches
# ==================================================================================


class RecordsSummary(NamedTuple):
    """What :func:`validate_records` learnt that the batch headers did not say.

    A NamedTuple rather than a frozen dataclass: it is built once per produced
    partition, and a tuple is the cheapest object to build.
    """

    #: Records walked (the sum of the batches' records_count).
    record_count: int
    #: Batches whose maxTimestamp was corrected (their CRC was recomputed).
    max_timestamps_corrected: int


def _where(topic_partition: str) -> str:
    return f" in topic partition {topic_partition}" if topic_partition else ""


def _message(kind: int, index: int, a: int, b: int) -> str:
    """Kafka's words (DefaultRecordBatch, DefaultRecord) for a defect :func:`scan` found."""
    if kind == KIND_EOF:
        return "Incorrect declared batch size, premature EOF reached"
    if kind == KIND_REMAINING:
        return f"Incorrect declared batch size, records still remaining in file ({a} bytes)"
    if kind == KIND_SIZE_OVER:
        return (
            f"Invalid record size: expected {a} bytes in record payload, but instead the "
            f"buffer has only {b} remaining bytes (record {index})"
        )
    if kind == KIND_SIZE_MISMATCH:
        return (
            f"Invalid record size: expected to read {a} bytes in record payload, but instead "
            f"read {b} (record {index})"
        )
    if kind == KIND_HEADER_COUNT_NEG:
        return f"Found invalid number of record headers {a} (record {index})"
    if kind == KIND_HEADER_COUNT_BIG:
        return (
            f"Found invalid number of record headers. {a} is larger than the remaining "
            f"size of the buffer (record {index})"
        )
    if kind == KIND_HEADER_KEY_NEG:
        return f"Invalid negative header key size {a} (record {index})"
    if kind == KIND_OFFSET_DELTA:
        return (
            f"Record {index} has offset delta {a}: the records of a produced batch must "
            f"have offset deltas 0, 1, 2, ... in order"
        )
    return f"Found invalid record structure (record {index})"


def validate_records(
    buf: bytearray | memoryview,
    *,
    compacted: bool = False,
    log_append_time: bool = False,
    timestamp_bounds: tuple[int, int] | None = None,
    topic_partition: str = "",
) -> RecordsSummary:
    """HOT. Walk every record of every batch in ``buf``; refuse or correct as Kafka does.

    ``buf`` must already have passed :func:`validate_batches` with ``from_client``
    (the module docstring lists the checks). ``timestamp_bounds`` is the range
    ``message.timestamp.before.max.ms`` and ``.after.max.ms`` allow around now, for
    CreateTime topics (None: no bound). Raises :class:`InvalidRecordError`,
    :class:`RecordValidationError` (keyless records on a ``compacted`` topic,
    timestamps out of bounds: per-record errors), :class:`CorruptRecordError` (a
    compressed payload that does not decompress) or :class:`RecordTooLargeError`
    (one that decompresses to too much), leaving ``buf`` untouched; otherwise
    patches wrong maxTimestamps of CreateTime batches (not on ``log_append_time``
    topics, which are stamped afterwards) and needs ``buf`` writable only then.
    """
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    end = len(view)
    walk = scan
    lo, hi = (_I64_MIN, _I64_MAX) if timestamp_bounds is None else timestamp_bounds
    pos = 0
    records = 0
    corrections: list[tuple[int, int, int]] = []
    while pos < end:
        (_, length, _, _, _, attributes, _, base_timestamp, max_timestamp, producer_id, _, _, count) = (
            _unpack_header(view, pos)
        )
        size = LOG_OVERHEAD + length
        if attributes & TRANSACTIONAL_FLAG_MASK and producer_id < 0:
            raise InvalidRecordError(
                f"Transactional record batch without a producer id (producerId {producer_id})"
                + _where(topic_partition)
            )
        codec = attributes & COMPRESSION_CODEC_MASK
        data = view[pos + RECORDS_OFFSET : pos + size]
        if codec:
            data = decompress(codec, data, max_size=MAX_DECOMPRESSED_BATCH_BYTES)
        log_append_batch = attributes & TIMESTAMP_TYPE_MASK
        if log_append_batch:  # records' timestamps are the header's: checked below
            kind, index, a, b, found_max, keyless, late = walk(
                data, count, base_timestamp, compacted, _I64_MIN, _I64_MAX
            )
        else:
            kind, index, a, b, found_max, keyless, late = walk(
                data, count, base_timestamp, compacted, lo, hi
            )
        if kind:
            raise InvalidRecordError(_message(kind, index, a, b) + _where(topic_partition))
        if log_append_batch and (
            log_append_time
            or max_timestamp == NO_TIMESTAMP
            or (timestamp_bounds is not None and not lo <= max_timestamp <= hi)
        ):
            keyed = set(keyless or ())
            late = [i for i in range(count) if i not in keyed]
        if keyless or late:
            _refuse_records(view[pos : pos + size], keyless or [], late or [], lo, hi, topic_partition)
        if found_max != max_timestamp and not log_append_time and not log_append_batch:
            corrections.append((pos, size, found_max))
        records += count
        pos += size
    if corrections:
        writable = _as_writable_view(view)
        for pos, size, found_max in corrections:
            _pack_i64(writable, pos + MAX_TIMESTAMP_OFFSET, found_max)
            _pack_u32(writable, pos + CRC_OFFSET, _crc_of(writable, pos + ATTRIBUTES_OFFSET, pos + size))
    return RecordsSummary(record_count=records, max_timestamps_corrected=len(corrections))


def _refuse_records(
    batch: memoryview, keyless: list[int], late: list[int], lo: int, hi: int, topic_partition: str
) -> None:
    """Raise Kafka's ``RecordValidationException`` for the records named (a cold path).

    Timestamps are decoded again only here, for the messages: a key error for each
    keyless record, a timestamp error for each record out of bounds, in batch order;
    INVALID_TIMESTAMP if there is any timestamp error, else INVALID_RECORD.
    """
    errors: list[tuple[int, str]] = [
        (i, f"Compacted topic cannot accept message without key{_where(topic_partition)}.")
        for i in keyless
    ]
    if late:
        view = BatchView(batch)
        decoded = decode_records(view)
        for i in late:
            if view.timestamp_type == TimestampType.LOG_APPEND_TIME and (
                lo == _I64_MIN and hi == _I64_MAX or view.max_timestamp == NO_TIMESTAMP
            ):
                message = (
                    f"Invalid timestamp type in message with offset {i}. Producer should not "
                    f"set timestamp type to LogAppendTime."
                )
            else:
                message = (
                    f"Timestamp {decoded[i].timestamp} of message with offset {i} is out of "
                    f"range. The timestamp should be within [{lo}, {hi}]"
                )
            errors.append((i, message))
        errors.sort()
        raise RecordValidationError(
            "One or more records have been rejected due to invalid timestamp",
            errors,
            error_code=INVALID_TIMESTAMP,
        )
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in errors[:3])
    raise RecordValidationError(
        f"One or more records have been rejected due to {len(errors)} record errors "
        f"in total, and only showing the first three errors at most: [{shown}]",
        errors,
    )
