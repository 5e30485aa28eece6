"""Records: varints, build/decode round trips, and kafka-python as an independent oracle."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.util import decode_varint as kafka_decode_varint
from kafka.record.util import encode_varint as kafka_encode_varint

from moldau.records import (
    ATTRIBUTES_OFFSET,
    BATCH_OVERHEAD,
    CRC_OFFSET,
    RECORDS_COUNT_OFFSET,
    BatchView,
    Compression,
    CorruptRecordError,
    Record,
    RecordInput,
    TimestampType,
    build_batch,
    decode_records,
    decode_unsigned_varint,
    decode_varint,
    encode_unsigned_varint,
    encode_varint,
    has_keyless_record,
    iter_batches,
    set_log_append_time,
    size_of_unsigned_varint,
    size_of_varint,
    validate_batches,
    zigzag_decode,
    zigzag_encode,
)
from moldau.records.record import append_varint

from .strategies import codecs, record_lists

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

#: Values compress well, so kafka-python (which falls back to no compression when
#: compressing does not pay) really uses the codec under test.
COMPRESSIBLE = b"a fairly repetitive value " * 8


def _fix_crc(buf: bytearray) -> None:
    from google_crc32c import value

    struct.pack_into(">I", buf, CRC_OFFSET, value(bytes(buf[ATTRIBUTES_OFFSET:])))


def _only_batch(data: bytes | bytearray) -> BatchView:
    (batch,) = list(iter_batches(data))
    return batch


def _expected(records: list[RecordInput], base_offset: int = 0) -> list[Record]:
    return [
        Record(base_offset + i, r.timestamp, r.key, r.value, list(r.headers))
        for i, r in enumerate(records)
    ]


# --- varints -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (63, b"\x7e"), (-64, b"\x7f"), (64, b"\x80\x01")],
)
def test_varint_known_encodings(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))


@given(INT64)
def test_varint_round_trip_and_matches_kafka_python(value: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) == size_of_varint(value) <= 10
    assert decode_varint(b"\xff" + encoded, 1) == (value, len(encoded) + 1)
    assert zigzag_decode(zigzag_encode(value)) == value
    theirs = bytearray()
    kafka_encode_varint(value, theirs.append)
    assert bytes(theirs) == encoded
    assert kafka_decode_varint(encoded, 0) == (value, len(encoded))


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_unsigned_varint_round_trip(value: int) -> None:
    encoded = encode_unsigned_varint(value)
    assert len(encoded) == size_of_unsigned_varint(value)
    assert decode_unsigned_varint(memoryview(encoded)) == (value, len(encoded))


def test_varint_errors() -> None:
    with pytest.raises(CorruptRecordError):
        decode_varint(b"\x80\x80")  # ends inside the varint
    with pytest.raises(CorruptRecordError):
        decode_varint(b"\x80" * 11)  # longer than a varlong can be
    with pytest.raises(ValueError):
        encode_varint(2**63)
    with pytest.raises(ValueError):
        encode_unsigned_varint(-1)


# --- round trips ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(records=record_lists, codec=codecs, base_offset=st.integers(0, 2**40))
def test_build_then_decode_gives_back_the_records(
    records: list[RecordInput], codec: Compression, base_offset: int
) -> None:
    data = build_batch(records, base_offset=base_offset, compression=codec)
    batch = _only_batch(data)
    assert batch.crc_is_valid()
    assert batch.compression == codec
    assert batch.records_count == len(records)
    assert batch.last_offset == base_offset + len(records) - 1
    assert batch.base_timestamp == records[0].timestamp
    assert batch.max_timestamp == max(r.timestamp for r in records)
    assert decode_records(batch) == _expected(records, base_offset)
    assert has_keyless_record(batch) == any(r.key is None for r in records)
    validate_batches(data, from_client=base_offset == 0)


def test_build_accepts_tuples_and_records_keeping_offsets() -> None:
    tuples = [(b"k1", b"v1", [("h", b"1")], 10), (None, None, [], 11)]
    first = _only_batch(build_batch(tuples, base_offset=100))
    decoded = decode_records(first)
    assert decoded == [
        Record(100, 10, b"k1", b"v1", [("h", b"1")]),
        Record(101, 11, None, None, []),
    ]
    # A cleaner keeping only the second record rebuilds the batch with its offset.
    rebuilt = _only_batch(build_batch(decoded[1:], base_offset=100))
    assert rebuilt.base_offset == 100
    assert rebuilt.last_offset_delta == 1
    assert rebuilt.records_count == 1
    assert decode_records(rebuilt) == decoded[1:]


def test_explicit_offset_deltas_leave_gaps() -> None:
    batch = _only_batch(
        build_batch(
            [RecordInput(b"a", b"1", offset_delta=0), RecordInput(b"b", b"2", offset_delta=5)]
        )
    )
    assert [r.offset for r in decode_records(batch)] == [0, 5]
    assert batch.last_offset_delta == 5
    assert batch.records_count == 2
    # Kafka refuses such a batch from a producer, but accepts it when replicated.
    validate_batches(batch.batch_bytes(), from_client=False)


def test_build_refuses_empty_and_unordered() -> None:
    with pytest.raises(ValueError):
        build_batch([])
    with pytest.raises(ValueError):
        build_batch(
            [RecordInput(b"a", b"", offset_delta=3), RecordInput(b"b", b"", offset_delta=3)]
        )


def test_build_sets_header_fields() -> None:
    data = build_batch(
        [RecordInput(b"k", b"v", timestamp=5)],
        base_offset=7,
        producer_id=42,
        producer_epoch=3,
        base_sequence=9,
        is_transactional=True,
        is_control=True,
        partition_leader_epoch=11,
        timestamp_type=TimestampType.LOG_APPEND_TIME,
    )
    batch = _only_batch(data)
    header = batch.header()
    assert (header.base_offset, header.partition_leader_epoch, header.magic) == (7, 11, 2)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, 9)
    assert batch.is_transactional and batch.is_control
    assert batch.timestamp_type == TimestampType.LOG_APPEND_TIME
    assert batch.crc_is_valid()


def test_header_keys_that_are_not_utf8_survive_a_round_trip() -> None:
    raw_key = b"\xff\xfekey"
    data = bytearray(build_batch([RecordInput(b"k", b"v", headers=[("hkey", b"x")])]))
    # Patch the header key bytes "hkey" into invalid UTF-8 of the same length.
    index = data.index(b"hkey")
    data[index : index + 4] = raw_key[:4]
    _fix_crc(data)
    (record,) = decode_records(_only_batch(data))
    rebuilt = build_batch([record])
    assert raw_key[:4] in rebuilt


# --- LogAppendTime -------------------------------------------------------------------


@pytest.mark.parametrize("codec", list(Compression), ids=lambda c: c.name)
def test_log_append_time_batches_report_max_timestamp_for_every_record(
    codec: Compression,
) -> None:
    data = bytearray(
        build_batch(
            [RecordInput(b"k", COMPRESSIBLE, timestamp=t) for t in (1000, 999, 1200)],
            compression=codec,
        )
    )
    set_log_append_time(data, 5555)
    batch = _only_batch(data)
    assert batch.crc_is_valid()
    assert [r.timestamp for r in decode_records(batch)] == [5555, 5555, 5555]
    theirs = DefaultRecordBatch(bytes(data))
    assert theirs.validate_crc()
    assert [r.timestamp for r in theirs] == [5555, 5555, 5555]


# --- cross-check against kafka-python ------------------------------------------------


@pytest.mark.parametrize("codec", list(Compression), ids=lambda c: c.name)
@settings(max_examples=25, deadline=None)
@given(records=record_lists)
def test_kafka_python_reads_what_we_build(codec: Compression, records: list[RecordInput]) -> None:
    data = build_batch(
        records,
        compression=codec,
        producer_id=1234,
        producer_epoch=5,
        base_sequence=77,
        is_transactional=True,
    )
    theirs = DefaultRecordBatch(bytes(data))
    assert theirs.validate_crc()
    assert theirs.compression_type == codec
    assert (theirs.producer_id, theirs.producer_epoch, theirs.base_sequence) == (1234, 5, 77)
    assert theirs.is_transactional
    assert theirs.last_offset_delta == len(records) - 1
    assert theirs.max_timestamp == max(r.timestamp for r in records)
    got = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in theirs]
    assert got == [(i, r.timestamp, r.key, r.value, list(r.headers)) for i, r in enumerate(records)]


@pytest.mark.parametrize("codec", list(Compression), ids=lambda c: c.name)
@settings(max_examples=25, deadline=None)
@given(records=record_lists)
def test_we_read_what_kafka_python_builds(codec: Compression, records: list[RecordInput]) -> None:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=int(codec),
        is_transactional=False,
        producer_id=99,
        producer_epoch=1,
        base_sequence=0,
        batch_size=1 << 20,
    )
    for i, r in enumerate(records):
        value = COMPRESSIBLE if r.value is None else r.value + COMPRESSIBLE
        timestamp = max(r.timestamp, 0)  # kafka-python writes None-less timestamps
        builder.append(i, timestamp=timestamp, key=r.key, value=value, headers=list(r.headers))
    data = bytes(builder.build())

    info = validate_batches(data)
    assert info.record_count == len(records)
    assert (info.producer_id, info.producer_epoch, info.base_sequence) == (99, 1, 0)
    batch = _only_batch(data)
    assert batch.crc_is_valid()
    if codec != Compression.NONE:
        assert batch.compression == codec  # the payload compresses, so it was kept
    decoded = decode_records(batch)
    assert [(d.offset, d.timestamp, d.key, d.value, d.headers) for d in decoded] == [
        (
            i,
            max(r.timestamp, 0),
            r.key,
            COMPRESSIBLE if r.value is None else r.value + COMPRESSIBLE,
            list(r.headers),
        )
        for i, r in enumerate(records)
    ]


# --- keyless records -----------------------------------------------------------------


@pytest.mark.parametrize("codec", list(Compression), ids=lambda c: c.name)
def test_has_keyless_record(codec: Compression) -> None:
    keyed = [RecordInput(b"k%d" % i, COMPRESSIBLE) for i in range(5)]
    assert not has_keyless_record(_only_batch(build_batch(keyed, compression=codec)))
    # An empty key is a key; only a null key is missing.
    empty_key = [*keyed, RecordInput(b"", COMPRESSIBLE)]
    assert not has_keyless_record(_only_batch(build_batch(empty_key, compression=codec)))
    keyless = [*keyed, RecordInput(None, COMPRESSIBLE)]
    assert has_keyless_record(_only_batch(build_batch(keyless, compression=codec)))


# --- corrupt records -----------------------------------------------------------------


def _uncompressed_with_records_region(records_region: bytes, count: int) -> bytearray:
    """A batch header (one record's worth) followed by an arbitrary records region."""
    data = bytearray(build_batch([RecordInput(b"k", b"v")]))
    del data[BATCH_OVERHEAD:]
    data += records_region
    struct.pack_into(">i", data, 8, len(data) - 12)
    struct.pack_into(">i", data, RECORDS_COUNT_OFFSET, count)
    _fix_crc(data)
    return data


def _one_record(key: bytes | None, value: bytes | None) -> bytes:
    out = bytearray()
    record = build_batch([RecordInput(key, value)])
    out += record[BATCH_OVERHEAD:]
    return bytes(out)


def test_record_length_overrunning_the_batch_is_corrupt() -> None:
    body = bytearray(_one_record(b"key", b"value"))
    body[0] += 2  # length varint of a short record: claim 1 more byte than exists
    with pytest.raises(CorruptRecordError):
        decode_records(_only_batch(_uncompressed_with_records_region(bytes(body), 1)))


def test_fewer_records_than_declared_is_corrupt() -> None:
    body = _one_record(b"key", b"value")
    with pytest.raises(CorruptRecordError):
        decode_records(_only_batch(_uncompressed_with_records_region(body, 2)))
    with pytest.raises(CorruptRecordError):
        has_keyless_record(_only_batch(_uncompressed_with_records_region(body, 2)))


def test_trailing_bytes_after_the_records_are_corrupt() -> None:
    body = _one_record(b"key", b"value") + b"\x00"
    with pytest.raises(CorruptRecordError):
        decode_records(_only_batch(_uncompressed_with_records_region(body, 1)))


def test_key_length_overrunning_its_record_is_corrupt() -> None:
    body = bytearray(_one_record(b"key", b"value"))
    # Layout: length, attributes, tsDelta, offsetDelta, keyLength(3 -> zigzag 6), ...
    assert body[4] == 6
    body[4] = 40  # key of 20 bytes, longer than the record
    with pytest.raises(CorruptRecordError):
        decode_records(_only_batch(_uncompressed_with_records_region(bytes(body), 1)))


def test_record_length_too_short_is_corrupt() -> None:
    body = bytearray(_one_record(b"key", b"value"))
    body[0] = 2  # claims a 1-byte record
    with pytest.raises(CorruptRecordError):
        decode_records(_only_batch(_uncompressed_with_records_region(bytes(body), 1)))


def test_append_varint_writes_in_place() -> None:
    out = bytearray(b"x")
    append_varint(out, -2)
    assert out == b"x\x03"
