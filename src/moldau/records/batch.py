"""Kafka record batch v2 ("magic 2"): zero-copy views, validation and in-place patching.

Theory of operation
-------------------
The broker stores record batches byte for byte as producers send them (ARCHITECTURE.md,
decision 2). On the produce path it therefore never builds individual records: it
walks the batch *headers* of a buffer, checks magic, lengths and CRC-32C (then
:mod:`moldau.records.validation` walks the records themselves, in C), patches the
fields the broker owns (base offset, partition leader epoch, and for
``LogAppendTime`` topics the timestamp type and max timestamp) in place, and writes
the buffer to the log. Everything in this module works on that principle:

- :class:`BatchView` is a read-only window on one batch inside a larger buffer; each
  property decodes one header field on demand with :func:`struct.unpack_from`, so
  looking at a batch costs nothing until a field is asked for.
- :func:`iter_batches`, :func:`validate_batches` and :func:`assign_offsets` are the
  HOT functions: their cost is a handful of ``struct`` calls per *batch* (plus the
  CRC, which runs in C), never per record.
- Functions that change a buffer take a ``bytearray`` (or a writable memoryview) and
  patch it in place; nothing here copies record payloads, except
  :meth:`BatchView.crc_is_valid`, see there.

Record batch v2 layout (all integers big-endian; offsets from the batch start)::

    offset  size  field
         0     8  baseOffset            int64   assigned by the broker
         8     4  batchLength           int32   bytes after this field
        12     4  partitionLeaderEpoch  int32   set by the broker, not in CRC
        16     1  magic                 int8    always 2 here
        17     4  crc                   uint32  CRC-32C of bytes 21..end
        21     2  attributes            int16   see the *_MASK constants
        23     4  lastOffsetDelta       int32
        27     8  baseTimestamp         int64
        35     8  maxTimestamp          int64
        43     8  producerId            int64
        51     2  producerEpoch         int16
        53     4  baseSequence          int32
        57     4  recordsCount          int32
        61     -  records               (compressed as a whole if a codec is set)

Because the CRC starts at ``attributes``, the broker may rewrite ``baseOffset`` and
``partitionLeaderEpoch`` without recomputing it; changing attributes or timestamps
(:func:`set_log_append_time`) requires a new CRC.

Reference: the Kafka protocol documentation ("Record Batch") and
``org.apache.kafka.common.record.DefaultRecordBatch``; the validation rules follow
``LogValidator`` and ``UnifiedLog.analyzeAndValidateRecords``.

Thread-safety: views hold no state besides the buffer and a position; patching
functions mutate the caller's buffer and must not race with readers of it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from google_crc32c import value as _crc32c

from moldau.records.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    UnsupportedCompressionError,
)

__all__ = [
    "ATTRIBUTES_OFFSET",
    "BASE_OFFSET_OFFSET",
    "BASE_SEQUENCE_OFFSET",
    "BASE_TIMESTAMP_OFFSET",
    "BATCH_LENGTH_OFFSET",
    "BATCH_OVERHEAD",
    "COMPRESSION_CODEC_MASK",
    "CONTROL_FLAG_MASK",
    "CRC_OFFSET",
    "CURRENT_MAGIC",
    "DELETE_HORIZON_FLAG_MASK",
    "HEADER_SIZE_UP_TO_MAGIC",
    "LAST_OFFSET_DELTA_OFFSET",
    "LOG_OVERHEAD",
    "MAGIC_OFFSET",
    "MAX_TIMESTAMP_OFFSET",
    "MIN_BATCH_LENGTH",
    "MIN_RECORD_SIZE",
    "NO_PARTITION_LEADER_EPOCH",
    "NO_PRODUCER_EPOCH",
    "NO_PRODUCER_ID",
    "NO_SEQUENCE",
    "NO_TIMESTAMP",
    "PARTITION_LEADER_EPOCH_OFFSET",
    "PRODUCER_EPOCH_OFFSET",
    "PRODUCER_ID_OFFSET",
    "RECORDS_COUNT_OFFSET",
    "RECORDS_OFFSET",
    "TIMESTAMP_TYPE_MASK",
    "TRANSACTIONAL_FLAG_MASK",
    "BatchHeader",
    "BatchView",
    "BatchesInfo",
    "Compression",
    "TimestampType",
    "assign_offsets",
    "iter_batches",
    "set_log_append_time",
    "set_partition_leader_epoch",
    "validate_batches",
]

# --- Header field offsets, relative to the start of a batch -----------------------
BASE_OFFSET_OFFSET = 0
BATCH_LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
PRODUCER_EPOCH_OFFSET = 51
BASE_SEQUENCE_OFFSET = 53
RECORDS_COUNT_OFFSET = 57
RECORDS_OFFSET = 61

#: Bytes of header before the first record.
BATCH_OVERHEAD = 61
#: baseOffset (int64) + batchLength (int32): the part not counted in batchLength.
LOG_OVERHEAD = 12
#: Smallest legal batchLength: a batch with a header and no records.
MIN_BATCH_LENGTH = BATCH_OVERHEAD - LOG_OVERHEAD
#: Bytes needed to read a batch's magic byte (Kafka's HEADER_SIZE_UP_TO_MAGIC).
HEADER_SIZE_UP_TO_MAGIC = MAGIC_OFFSET + 1
#: The only record format this module handles.
CURRENT_MAGIC = 2
#: Smallest encoded v2 record: length, attributes, timestampDelta, offsetDelta,
#: keyLength, valueLength and header count, one byte each.
MIN_RECORD_SIZE = 7

# --- Attribute bits ----------------------------------------------------------------
COMPRESSION_CODEC_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_FLAG_MASK = 0x10
CONTROL_FLAG_MASK = 0x20
#: KIP-534: baseTimestamp holds the delete horizon set by the log cleaner.
DELETE_HORIZON_FLAG_MASK = 0x40

# --- Sentinels (Kafka's RecordBatch.NO_*) -----------------------------------------
NO_TIMESTAMP = -1
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1

_MAX_SEQUENCE = 0x7FFFFFFF

# --- Precompiled structs (bound methods save an attribute lookup per call) ---------
_HEADER = struct.Struct(">qiibIhiqqqhii")
assert _HEADER.size == BATCH_OVERHEAD
_unpack_header = _HEADER.unpack_from
_unpack_i64 = struct.Struct(">q").unpack_from
_unpack_i32 = struct.Struct(">i").unpack_from
_unpack_u32 = struct.Struct(">I").unpack_from
_unpack_i16 = struct.Struct(">h").unpack_from
_unpack_i8 = struct.Struct(">b").unpack_from
_pack_i64 = struct.Struct(">q").pack_into
_pack_i32 = struct.Struct(">i").pack_into
_pack_u32 = struct.Struct(">I").pack_into
_pack_i16 = struct.Struct(">h").pack_into
# batchLength at +8, then (skipping 11 bytes) lastOffsetDelta at +23, in one call.
_unpack_length_and_delta = struct.Struct(">i11xi").unpack_from
# attributes at +21, then (skipping 12 bytes) maxTimestamp at +35, in one call.
_unpack_attrs_and_max_ts = struct.Struct(">h12xq").unpack_from


class Compression(enum.IntEnum):
    """Codec id in the low three attribute bits (Kafka's ``CompressionType``)."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class TimestampType(enum.IntEnum):
    """Attribute bit 3: who set the timestamps (Kafka's ``TimestampType``)."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


_COMPRESSIONS: tuple[Compression, ...] = tuple(Compression)
_TIMESTAMP_TYPES: tuple[TimestampType, ...] = tuple(TimestampType)


class BatchHeader(NamedTuple):
    """All header fields of one batch, decoded by a single ``struct`` call.

    For code that needs most fields at once (validation, storage indexes); a
    :class:`BatchView` property is cheaper when only one or two are needed.
    """

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int


def _as_byte_view(buf: bytes | bytearray | memoryview) -> memoryview:
    """Return a flat unsigned-byte memoryview over ``buf`` without copying."""
    if isinstance(buf, memoryview):
        if buf.format != "B" or buf.ndim != 1:
            return buf.cast("B")
        return buf
    return memoryview(buf)


def _as_writable_view(buf: bytearray | memoryview) -> memoryview:
    view = _as_byte_view(buf)
    if view.readonly:
        raise TypeError("buffer must be writable (a bytearray or a writable memoryview)")
    return view


def _crc_of(view: memoryview, start: int, end: int) -> int:
    # google_crc32c's C entry point parses its argument with "y#", which accepts
    # only immutable bytes (not memoryview, not bytearray); the copy is a memcpy,
    # measured at well under the cost of the checksum itself for typical batches.
    return _crc32c(bytes(view[start:end]))


class BatchView:
    """Zero-copy view over exactly one v2 record batch at ``position`` in ``buf``.

    Properties decode their header field on each access (one ``unpack_from``); keep
    the value in a local variable if you need it repeatedly, or call :meth:`header`
    to decode everything at once. The view keeps ``buf`` alive; while it exists a
    ``bytearray`` underneath cannot be resized.

    The constructor checks that the header and the whole batch (as declared by its
    batchLength) lie inside ``buf``; it does not check magic or CRC
    (:func:`validate_batches` and :meth:`crc_is_valid` do).
    """

    __slots__ = ("_buf", "_pos")

    _buf: memoryview
    _pos: int

    def __init__(self, buf: bytes | bytearray | memoryview, position: int = 0) -> None:
        view = _as_byte_view(buf)
        if position < 0 or len(view) - position < BATCH_OVERHEAD:
            raise CorruptRecordError(
                f"no complete record batch header at position {position} "
                f"of a {len(view)}-byte buffer"
            )
        batch_length = _unpack_i32(view, position + BATCH_LENGTH_OFFSET)[0]
        if batch_length < MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"batch length {batch_length} is smaller than the minimum {MIN_BATCH_LENGTH}"
            )
        if position + LOG_OVERHEAD + batch_length > len(view):
            raise CorruptRecordError(
                f"batch at position {position} declares {LOG_OVERHEAD + batch_length} bytes "
                f"but only {len(view) - position} remain"
            )
        self._buf = view
        self._pos = position

    @classmethod
    def _trusted(cls, buf: memoryview, position: int) -> BatchView:
        """Build a view without the constructor's checks (the caller has made them)."""
        self = object.__new__(cls)
        self._buf = buf
        self._pos = position
        return self

    def __repr__(self) -> str:
        return (
            f"BatchView(position={self._pos}, base_offset={self.base_offset}, "
            f"last_offset_delta={self.last_offset_delta}, size={self.size}, "
            f"compression={self.compression_id})"
        )

    # --- raw header fields ------------------------------------------------------------
    @property
    def position(self) -> int:
        """Offset of this batch's first byte within the underlying buffer."""
        return self._pos

    @property
    def base_offset(self) -> int:
        return _unpack_i64(self._buf, self._pos)[0]

    @property
    def batch_length(self) -> int:
        """Bytes after the batchLength field (the whole batch minus :data:`LOG_OVERHEAD`)."""
        return _unpack_i32(self._buf, self._pos + BATCH_LENGTH_OFFSET)[0]

    @property
    def size(self) -> int:
        """Total bytes of this batch in the buffer: ``LOG_OVERHEAD + batch_length``."""
        return LOG_OVERHEAD + _unpack_i32(self._buf, self._pos + BATCH_LENGTH_OFFSET)[0]

    @property
    def partition_leader_epoch(self) -> int:
        return _unpack_i32(self._buf, self._pos + PARTITION_LEADER_EPOCH_OFFSET)[0]

    @property
    def magic(self) -> int:
        return _unpack_i8(self._buf, self._pos + MAGIC_OFFSET)[0]

    @property
    def crc(self) -> int:
        """The stored CRC-32C (unsigned)."""
        return _unpack_u32(self._buf, self._pos + CRC_OFFSET)[0]

    @property
    def attributes(self) -> int:
        return _unpack_i16(self._buf, self._pos + ATTRIBUTES_OFFSET)[0]

    @property
    def compression_id(self) -> int:
        """The raw codec id (0-7); unlike :attr:`compression` it never raises."""
        return _unpack_i16(self._buf, self._pos + ATTRIBUTES_OFFSET)[0] & COMPRESSION_CODEC_MASK

    @property
    def compression(self) -> Compression:
        """The codec; raises :class:`UnsupportedCompressionError` for ids 5-7."""
        codec = self.compression_id
        if codec > Compression.ZSTD:
            raise UnsupportedCompressionError(f"unknown compression codec id {codec}")
        return _COMPRESSIONS[codec]

    @property
    def timestamp_type(self) -> TimestampType:
        attributes = _unpack_i16(self._buf, self._pos + ATTRIBUTES_OFFSET)[0]
        return _TIMESTAMP_TYPES[(attributes & TIMESTAMP_TYPE_MASK) >> 3]

    @property
    def is_transactional(self) -> bool:
        attributes = _unpack_i16(self._buf, self._pos + ATTRIBUTES_OFFSET)[0]
        return bool(attributes & TRANSACTIONAL_FLAG_MASK)

    @property
    def is_control(self) -> bool:
        attributes = _unpack_i16(self._buf, self._pos + ATTRIBUTES_OFFSET)[0]
        return bool(attributes & CONTROL_FLAG_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        """KIP-534: the log cleaner stored a delete horizon in ``base_timestamp``."""
        attributes = _unpack_i16(self._buf, self._pos + ATTRIBUTES_OFFSET)[0]
        return bool(attributes & DELETE_HORIZON_FLAG_MASK)

    @property
    def last_offset_delta(self) -> int:
        return _unpack_i32(self._buf, self._pos + LAST_OFFSET_DELTA_OFFSET)[0]

    @property
    def last_offset(self) -> int:
        """``base_offset + last_offset_delta``: the offset of the batch's last record."""
        pos = self._pos
        buf = self._buf
        return _unpack_i64(buf, pos)[0] + _unpack_i32(buf, pos + LAST_OFFSET_DELTA_OFFSET)[0]

    @property
    def next_offset(self) -> int:
        """The offset that follows this batch (``last_offset + 1``)."""
        return self.last_offset + 1

    @property
    def base_timestamp(self) -> int:
        return _unpack_i64(self._buf, self._pos + BASE_TIMESTAMP_OFFSET)[0]

    @property
    def max_timestamp(self) -> int:
        return _unpack_i64(self._buf, self._pos + MAX_TIMESTAMP_OFFSET)[0]

    @property
    def producer_id(self) -> int:
        return _unpack_i64(self._buf, self._pos + PRODUCER_ID_OFFSET)[0]

    @property
    def producer_epoch(self) -> int:
        return _unpack_i16(self._buf, self._pos + PRODUCER_EPOCH_OFFSET)[0]

    @property
    def base_sequence(self) -> int:
        return _unpack_i32(self._buf, self._pos + BASE_SEQUENCE_OFFSET)[0]

    @property
    def last_sequence(self) -> int:
        """Sequence number of the last record, wrapping at 2**31 like Kafka's.

        :data:`NO_SEQUENCE` if the batch carries no sequence (non-idempotent producer).
        """
        base = self.base_sequence
        if base == NO_SEQUENCE:
            return NO_SEQUENCE
        return (base + self.last_offset_delta) & _MAX_SEQUENCE

    @property
    def records_count(self) -> int:
        return _unpack_i32(self._buf, self._pos + RECORDS_COUNT_OFFSET)[0]

    # --- whole-batch operations ---------------------------------------------------------
    def header(self) -> BatchHeader:
        """Decode every header field with one ``struct`` call."""
        return BatchHeader._make(_unpack_header(self._buf, self._pos))

    def batch_bytes(self) -> memoryview:
        """The whole batch (``size`` bytes), as a slice of the underlying buffer."""
        pos = self._pos
        return self._buf[pos : pos + self.size]

    def records_bytes(self) -> memoryview:
        """The bytes after the 61-byte header: the records, compressed if a codec is set."""
        pos = self._pos
        return self._buf[pos + RECORDS_OFFSET : pos + self.size]

    def compute_crc(self) -> int:
        """CRC-32C of bytes ``attributes..end``, the value :attr:`crc` should hold."""
        pos = self._pos
        return _crc_of(self._buf, pos + ATTRIBUTES_OFFSET, pos + self.size)

    def crc_is_valid(self) -> bool:
        """Whether the stored CRC matches the batch contents.

        Costs one copy of the batch (see ``_crc_of``) plus the CRC-32C, both in C.
        """
        return self.compute_crc() == self.crc


# ==================================================================================
# HOT: walking, validating and numbering batches in a buffer
# ==================================================================================


def iter_batches(
    buf: bytes | bytearray | memoryview, *, allow_partial_tail: bool = False
) -> Iterator[BatchView]:
    """HOT. Yield a :class:`BatchView` for each batch in a buffer of concatenated batches.

    Checks only what is needed to find the next batch safely: batchLength at least
    :data:`MIN_BATCH_LENGTH` and magic 2 (both as soon as the bytes are there, even
    in an incomplete trailing batch, like Kafka's ``ByteBufferLogInputStream``).
    An incomplete trailing batch (fewer bytes left than its header or declared
    length) ends the iteration silently when ``allow_partial_tail`` is true -- fetch
    responses and torn log tails legitimately end that way -- and raises
    :class:`CorruptRecordError` otherwise. CRCs are not checked here.
    """
    view = _as_byte_view(buf)
    end = len(view)
    pos = 0
    unpack_i32 = _unpack_i32
    trusted = BatchView._trusted
    while pos < end:
        remaining = end - pos
        if remaining < LOG_OVERHEAD:
            if allow_partial_tail:
                return
            raise CorruptRecordError(
                f"truncated batch at position {pos}: {remaining} bytes, "
                f"fewer than the {LOG_OVERHEAD}-byte log overhead"
            )
        batch_length = unpack_i32(view, pos + BATCH_LENGTH_OFFSET)[0]
        if batch_length < MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"batch at position {pos} has length {batch_length}, "
                f"smaller than the minimum {MIN_BATCH_LENGTH}"
            )
        if remaining >= HEADER_SIZE_UP_TO_MAGIC:
            magic = view[pos + MAGIC_OFFSET]
            if magic != CURRENT_MAGIC:
                raise CorruptRecordError(
                    f"batch at position {pos} has magic {magic}, only {CURRENT_MAGIC} is supported"
                )
        size = LOG_OVERHEAD + batch_length
        if remaining < size:
            if allow_partial_tail:
                return
            raise CorruptRecordError(
                f"truncated batch at position {pos}: declares {size} bytes, {remaining} remain"
            )
        yield trusted(view, pos)
        pos += size


@dataclass(frozen=True, slots=True)
class BatchesInfo:
    """What :func:`validate_batches` learnt from the batch headers of one buffer.

    Offsets are as found in the buffer, i.e. before :func:`assign_offsets`.
    """

    batch_count: int
    #: Offsets the buffer spans: the sum of ``last_offset_delta + 1`` over batches.
    record_count: int
    #: Largest batch maxTimestamp, or :data:`NO_TIMESTAMP` if no batch has one.
    max_timestamp: int
    #: Offset delta, counted from the first record of the buffer, of the *last* record
    #: of the first batch holding :attr:`max_timestamp` (Kafka's "shallow" offset of
    #: the max timestamp, what its time index records); -1 with no timestamp.
    offset_delta_of_max_timestamp: int
    #: Of the first batch (Kafka takes producer state from the first batch).
    producer_id: int
    producer_epoch: int
    base_sequence: int
    is_transactional: bool
    compression: Compression
    #: Total bytes of all batches (the whole buffer once validated).
    size: int
    #: base_offset of the first batch and last_offset of the last, as sent; -1 if none.
    first_offset: int = -1
    last_offset: int = -1
    #: Whether each batch's last offset is greater than the previous batch's (the
    #: check Kafka applies to appends that keep their offsets, e.g. replication).
    offsets_monotonic: bool = True


_EMPTY_INFO = BatchesInfo(
    batch_count=0,
    record_count=0,
    max_timestamp=NO_TIMESTAMP,
    offset_delta_of_max_timestamp=-1,
    producer_id=NO_PRODUCER_ID,
    producer_epoch=NO_PRODUCER_EPOCH,
    base_sequence=NO_SEQUENCE,
    is_transactional=False,
    compression=Compression.NONE,
    size=0,
)


def validate_batches(
    buf: bytes | bytearray | memoryview,
    *,
    max_batch_bytes: int | None = None,
    from_client: bool = True,
) -> BatchesInfo:
    """HOT. Check every batch header and CRC in ``buf``; summarise them.

    Per batch, in the order Kafka checks (``UnifiedLog.analyzeAndValidateRecords``
    then ``LogValidator.validateBatch``), raising:

    - :class:`CorruptRecordError`: truncated buffer, batchLength below
      :data:`MIN_BATCH_LENGTH`, magic other than 2, CRC mismatch, a records count
      or last offset delta that cannot be right (negative, or more uncompressed
      records than the bytes could hold);
    - :class:`RecordTooLargeError`: batch size (log overhead included, like Kafka's
      ``sizeInBytes``) above ``max_batch_bytes``;
    - :class:`UnsupportedCompressionError`: codec id above 4;
    - :class:`InvalidRecordError`, only when ``from_client`` (an append from a
      producer, which the leader numbers itself): no batch at all, a base offset
      other than 0, ``records_count`` not positive or not equal to
      ``last_offset_delta + 1``, a control batch, or a producer id without a base
      sequence.

    Pass ``from_client=False`` for batches that keep their offsets (replication,
    recovery): they may legitimately be control batches or cleaner-emptied
    batches whose count is 0.

    Not checked here, because it needs the records or the request: the records
    themselves and keys on compacted topics
    (:func:`moldau.records.validation.validate_records`), timestamp bounds and type,
    and "exactly one batch" for produce v3+ (use ``batch_count``).
    """
    view = _as_byte_view(buf)
    end = len(view)
    if end == 0:
        if from_client:
            raise InvalidRecordError("produce request carries no record batch")
        return _EMPTY_INFO

    unpack_i32 = _unpack_i32
    unpack_header = _unpack_header
    crc_of = _crc_of
    pos = 0
    batch_count = 0
    record_count = 0
    max_timestamp = NO_TIMESTAMP
    offset_delta_of_max_timestamp = -1
    first: tuple[int, ...] | None = None
    last_offset = -1
    monotonic = True

    while pos < end:
        remaining = end - pos
        if remaining < LOG_OVERHEAD:
            raise CorruptRecordError(f"truncated batch at position {pos}: {remaining} bytes left")
        batch_length = unpack_i32(view, pos + BATCH_LENGTH_OFFSET)[0]
        if batch_length < MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"batch at position {pos} has length {batch_length}, "
                f"smaller than the minimum {MIN_BATCH_LENGTH}"
            )
        if remaining >= HEADER_SIZE_UP_TO_MAGIC and view[pos + MAGIC_OFFSET] != CURRENT_MAGIC:
            raise CorruptRecordError(
                f"batch at position {pos} has magic {view[pos + MAGIC_OFFSET]}, "
                f"only {CURRENT_MAGIC} is supported"
            )
        size = LOG_OVERHEAD + batch_length
        if max_batch_bytes is not None and size > max_batch_bytes:
            raise RecordTooLargeError(
                f"batch of {size} bytes exceeds the maximum of {max_batch_bytes}"
            )
        if remaining < size:
            raise CorruptRecordError(
                f"truncated batch at position {pos}: declares {size} bytes, {remaining} remain"
            )
        (
            base_offset,
            _,
            _,
            _,
            crc,
            attributes,
            last_offset_delta,
            _,
            batch_max_timestamp,
            producer_id,
            _,
            base_sequence,
            records_count,
        ) = header = unpack_header(view, pos)

        if from_client and base_offset != 0:
            raise InvalidRecordError(
                f"the base offset of a produced record batch must be 0, not {base_offset}"
            )
        if crc_of(view, pos + ATTRIBUTES_OFFSET, pos + size) != crc:
            raise CorruptRecordError(f"CRC mismatch in batch at position {pos}")
        codec = attributes & COMPRESSION_CODEC_MASK
        if codec > Compression.ZSTD:
            raise UnsupportedCompressionError(f"unknown compression codec id {codec}")

        if from_client:
            if last_offset_delta < 0:
                raise InvalidRecordError(
                    f"batch has an invalid offset range: last offset delta {last_offset_delta}"
                )
            if records_count <= 0:
                raise InvalidRecordError(f"invalid reported record count {records_count}")
            if records_count != last_offset_delta + 1:
                raise InvalidRecordError(
                    f"inconsistent batch: last offset delta {last_offset_delta} "
                    f"but {records_count} records"
                )
            if attributes & CONTROL_FLAG_MASK:
                raise InvalidRecordError("clients are not allowed to write control records")
            if producer_id >= 0 and base_sequence < 0:
                raise InvalidRecordError(
                    f"invalid sequence number {base_sequence} for producer id {producer_id}"
                )
        elif last_offset_delta < 0 or records_count < 0:
            raise CorruptRecordError(
                f"batch at position {pos} has last offset delta {last_offset_delta} "
                f"and {records_count} records"
            )
        if codec == 0 and records_count * MIN_RECORD_SIZE > batch_length - MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"batch at position {pos} claims {records_count} records "
                f"in {batch_length - MIN_BATCH_LENGTH} bytes"
            )

        if batch_max_timestamp > max_timestamp:
            max_timestamp = batch_max_timestamp
            offset_delta_of_max_timestamp = record_count + last_offset_delta
        batch_last_offset = base_offset + last_offset_delta
        if batch_last_offset <= last_offset:
            monotonic = False
        last_offset = batch_last_offset
        if first is None:
            first = header
        record_count += last_offset_delta + 1
        batch_count += 1
        pos += size

    assert first is not None
    return BatchesInfo(
        batch_count=batch_count,
        record_count=record_count,
        max_timestamp=max_timestamp,
        offset_delta_of_max_timestamp=offset_delta_of_max_timestamp,
        producer_id=first[9],
        producer_epoch=first[10],
        base_sequence=first[11],
        is_transactional=bool(first[5] & TRANSACTIONAL_FLAG_MASK),
        compression=_COMPRESSIONS[first[5] & COMPRESSION_CODEC_MASK],
        size=end,
        first_offset=first[0],
        last_offset=last_offset,
        offsets_monotonic=monotonic,
    )


def _checked_batch_length(view: memoryview, pos: int, end: int) -> int:
    """batchLength of the batch at ``pos``, refusing anything that does not fit."""
    if end - pos < BATCH_OVERHEAD:
        raise CorruptRecordError(f"truncated batch header at position {pos}")
    batch_length = _unpack_i32(view, pos + BATCH_LENGTH_OFFSET)[0]
    if batch_length < MIN_BATCH_LENGTH or pos + LOG_OVERHEAD + batch_length > end:
        raise CorruptRecordError(f"impossible batch length {batch_length} at position {pos}")
    return batch_length


def assign_offsets(buf: bytearray | memoryview, first_offset: int) -> int:
    """HOT. Number the batches in ``buf`` consecutively from ``first_offset``, in place.

    Each batch's baseOffset becomes the next free offset and keeps its
    last_offset_delta, so a batch spans the same number of offsets as before. The
    CRC does not cover baseOffset, so it stays valid. Returns the last offset
    assigned (``first_offset - 1`` for an empty buffer). Meant for buffers that
    :func:`validate_batches` accepted; lengths are still checked so that a bad
    buffer cannot make it write out of bounds.
    """
    view = _as_writable_view(buf)
    end = len(view)
    pos = 0
    next_offset = first_offset
    pack_i64 = _pack_i64
    unpack_length_and_delta = _unpack_length_and_delta
    while pos < end:
        if end - pos < BATCH_OVERHEAD:
            raise CorruptRecordError(f"truncated batch header at position {pos}")
        batch_length, last_offset_delta = unpack_length_and_delta(view, pos + BATCH_LENGTH_OFFSET)
        if batch_length < MIN_BATCH_LENGTH or pos + LOG_OVERHEAD + batch_length > end:
            raise CorruptRecordError(f"impossible batch length {batch_length} at position {pos}")
        pack_i64(view, pos, next_offset)
        next_offset += last_offset_delta + 1
        pos += LOG_OVERHEAD + batch_length
    return next_offset - 1


def set_log_append_time(buf: bytearray | memoryview, timestamp_ms: int) -> None:
    """Stamp every batch with LogAppendTime ``timestamp_ms`` and recompute its CRC.

    Kafka's semantics (``DefaultRecordBatch.setMaxTimestamp``): the timestamp-type
    attribute bit is set and maxTimestamp becomes the append time; record deltas
    and baseTimestamp are left alone, because readers of a LogAppendTime batch take
    every record's timestamp from maxTimestamp. A batch that already carries exactly
    this type and time is not rewritten.
    """
    view = _as_writable_view(buf)
    end = len(view)
    pos = 0
    while pos < end:
        size = LOG_OVERHEAD + _checked_batch_length(view, pos, end)
        attributes, max_timestamp = _unpack_attrs_and_max_ts(view, pos + ATTRIBUTES_OFFSET)
        if not (attributes & TIMESTAMP_TYPE_MASK and max_timestamp == timestamp_ms):
            _pack_i16(view, pos + ATTRIBUTES_OFFSET, attributes | TIMESTAMP_TYPE_MASK)
            _pack_i64(view, pos + MAX_TIMESTAMP_OFFSET, timestamp_ms)
            _pack_u32(view, pos + CRC_OFFSET, _crc_of(view, pos + ATTRIBUTES_OFFSET, pos + size))
        pos += size


def set_partition_leader_epoch(buf: bytearray | memoryview, epoch: int) -> None:
    """Write the leader's epoch into every batch (not covered by the CRC)."""
    view = _as_writable_view(buf)
    end = len(view)
    pos = 0
    while pos < end:
        size = LOG_OVERHEAD + _checked_batch_length(view, pos, end)
        _pack_i32(view, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)
        pos += size
