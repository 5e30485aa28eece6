"""Batch headers: views, walking, validation, in-place offset/epoch/timestamp patching."""

from __future__ import annotations

import struct

import pytest
from google_crc32c import value as crc32c
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBase, DefaultRecordBatch

from moldau.records import (
    ATTRIBUTES_OFFSET,
    BASE_SEQUENCE_OFFSET,
    BATCH_LENGTH_OFFSET,
    BATCH_OVERHEAD,
    CRC_OFFSET,
    LAST_OFFSET_DELTA_OFFSET,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    MAX_TIMESTAMP_OFFSET,
    MIN_BATCH_LENGTH,
    PARTITION_LEADER_EPOCH_OFFSET,
    PRODUCER_ID_OFFSET,
    RECORDS_COUNT_OFFSET,
    BatchView,
    Compression,
    CorruptRecordError,
    InvalidRecordError,
    RecordInput,
    RecordTooLargeError,
    TimestampType,
    UnsupportedCompressionError,
    assign_offsets,
    build_batch,
    decode_records,
    iter_batches,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_batches,
)

from .strategies import codecs, record_lists


def _fix_crc(buf: bytearray, pos: int = 0) -> None:
    (length,) = struct.unpack_from(">i", buf, pos + BATCH_LENGTH_OFFSET)
    end = pos + LOG_OVERHEAD + length
    struct.pack_into(">I", buf, pos + CRC_OFFSET, crc32c(bytes(buf[pos + ATTRIBUTES_OFFSET : end])))


def _batch(n: int = 3, *, ts: int = 1000, **kwargs: object) -> bytes:
    return build_batch(
        [RecordInput(b"k%d" % i, b"value %d" % i, timestamp=ts + i) for i in range(n)],
        **kwargs,  # type: ignore[arg-type]
    )


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytearray:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    _fix_crc(buf)
    return buf


# --- layout --------------------------------------------------------------------------


def test_header_layout_matches_kafka_python() -> None:
    assert DefaultRecordBase.HEADER_STRUCT.size == BATCH_OVERHEAD == 61
    assert DefaultRecordBase.ATTRIBUTES_OFFSET == ATTRIBUTES_OFFSET
    assert DefaultRecordBase.CRC_OFFSET == CRC_OFFSET
    assert DefaultRecordBase.AFTER_LEN_OFFSET == LOG_OVERHEAD == 12
    assert MIN_BATCH_LENGTH == 49
    offsets = (PARTITION_LEADER_EPOCH_OFFSET, MAGIC_OFFSET, LAST_OFFSET_DELTA_OFFSET)
    assert offsets == (12, 16, 23)
    assert (MAX_TIMESTAMP_OFFSET, PRODUCER_ID_OFFSET, BASE_SEQUENCE_OFFSET) == (35, 43, 53)
    assert RECORDS_COUNT_OFFSET == 57


@pytest.mark.parametrize("codec", list(Compression), ids=lambda c: c.name)
def test_view_properties_agree_with_kafka_python(codec: Compression) -> None:
    data = build_batch(
        [RecordInput(b"k", b"v" * 300, timestamp=t) for t in (50, 40, 70, 60)],
        base_offset=1000,
        compression=codec,
        producer_id=7,
        producer_epoch=2,
        base_sequence=2**31 - 2,
        is_transactional=True,
        partition_leader_epoch=4,
    )
    view = BatchView(memoryview(data), 0)
    theirs = DefaultRecordBatch(data)
    assert view.base_offset == theirs.base_offset == 1000
    assert view.size == theirs.size_in_bytes == len(data)
    assert view.batch_length == len(data) - LOG_OVERHEAD
    assert view.partition_leader_epoch == theirs.leader_epoch == 4
    assert view.magic == theirs.magic == 2
    assert view.crc == theirs.crc
    assert view.attributes == theirs.attributes
    assert view.compression == theirs.compression_type == codec
    assert view.timestamp_type == theirs.timestamp_type == TimestampType.CREATE_TIME
    assert view.is_transactional is theirs.is_transactional is True
    assert view.is_control is theirs.is_control_batch is False
    assert not view.has_delete_horizon
    assert view.last_offset_delta == theirs.last_offset_delta == 3
    assert view.last_offset == theirs.last_offset == 1003
    assert view.next_offset == 1004
    assert view.base_timestamp == theirs.first_timestamp == 50
    assert view.max_timestamp == theirs.max_timestamp == 70
    assert view.producer_id == theirs.producer_id == 7
    assert view.producer_epoch == theirs.producer_epoch == 2
    assert view.base_sequence == theirs.base_sequence == 2**31 - 2
    assert view.last_sequence == theirs.last_sequence == 1  # wraps past int32 max
    assert view.records_count == theirs.records_count == 4
    assert view.position == 0
    assert len(view.records_bytes()) == len(data) - BATCH_OVERHEAD
    assert bytes(view.batch_bytes()) == data
    assert view.crc_is_valid() and theirs.validate_crc()
    assert tuple(view.header()) == theirs._header_data
    assert "base_offset=1000" in repr(view)


def test_view_at_a_position_inside_a_larger_buffer() -> None:
    first, second = _batch(2), _batch(5, base_offset=2)
    buf = bytearray(first + second)
    view = BatchView(memoryview(buf), len(first))
    assert view.position == len(first)
    assert view.base_offset == 2 and view.records_count == 5
    assert bytes(view.batch_bytes()) == second
    assert view.crc_is_valid()


def test_view_accepts_bytes_and_rejects_what_does_not_fit() -> None:
    data = _batch()
    assert BatchView(data, 0).records_count == 3
    with pytest.raises(CorruptRecordError):
        BatchView(memoryview(data[:-1]), 0)
    with pytest.raises(CorruptRecordError):
        BatchView(memoryview(data[:60]), 0)
    with pytest.raises(CorruptRecordError):
        BatchView(memoryview(data), 1)
    with pytest.raises(CorruptRecordError):
        BatchView(memoryview(_patched(data, BATCH_LENGTH_OFFSET, ">i", 10)), 0)


def test_unknown_codec_in_a_view() -> None:
    view = BatchView(memoryview(_patched(_batch(), ATTRIBUTES_OFFSET, ">h", 6)), 0)
    assert view.compression_id == 6
    with pytest.raises(UnsupportedCompressionError):
        _ = view.compression


def test_last_sequence_without_sequence() -> None:
    assert BatchView(memoryview(_batch()), 0).last_sequence == -1


# --- iter_batches --------------------------------------------------------------------


def test_iter_batches_walks_concatenated_batches() -> None:
    parts = [_batch(n, base_offset=o) for n, o in ((1, 0), (4, 1), (2, 5))]
    buf = b"".join(parts)
    for source in (buf, bytearray(buf), memoryview(buf)):
        views = list(iter_batches(source))
        assert [v.base_offset for v in views] == [0, 1, 5]
        assert [v.position for v in views] == [0, len(parts[0]), len(parts[0]) + len(parts[1])]
        assert all(v.crc_is_valid() for v in views)
    assert list(iter_batches(b"")) == []


def test_iter_batches_on_a_non_byte_memoryview() -> None:
    data = _batch() + b"\x00"  # pad to an even length so it can be cast to shorts
    words = memoryview(bytearray(data)).cast("H")
    with pytest.raises(CorruptRecordError):  # the pad byte is a truncated tail
        list(iter_batches(words))
    assert len(list(iter_batches(words, allow_partial_tail=True))) == 1


def test_every_truncation_of_the_tail() -> None:
    first, second = _batch(2), _batch(3, base_offset=2)
    buf = first + second
    for cut in range(len(first) + 1, len(buf)):
        truncated = buf[:cut]
        assert [v.base_offset for v in iter_batches(truncated, allow_partial_tail=True)] == [0]
        with pytest.raises(CorruptRecordError):
            list(iter_batches(truncated))
        with pytest.raises(CorruptRecordError):
            validate_batches(truncated)


def test_iter_batches_rejects_short_length_and_bad_magic() -> None:
    data = _batch()
    with pytest.raises(CorruptRecordError):
        list(iter_batches(_patched(data, BATCH_LENGTH_OFFSET, ">i", MIN_BATCH_LENGTH - 1)))
    with pytest.raises(CorruptRecordError):
        list(iter_batches(_patched(data, BATCH_LENGTH_OFFSET, ">i", -5)))
    bad_magic = _patched(data, MAGIC_OFFSET, ">b", 1)
    with pytest.raises(CorruptRecordError):
        list(iter_batches(bad_magic))
    # Bad magic is reported even in an incomplete tail, as soon as it is readable.
    with pytest.raises(CorruptRecordError):
        list(iter_batches(data + bytes(bad_magic[:20]), allow_partial_tail=True))
    assert len(list(iter_batches(data + bytes(bad_magic[:16]), allow_partial_tail=True))) == 1


# --- validate_batches ----------------------------------------------------------------


def test_validate_summarises_the_batches() -> None:
    buf = (
        _batch(2, ts=100, producer_id=5, producer_epoch=1, base_sequence=0)
        + _batch(3, ts=500, compression=Compression.LZ4)  # max timestamp 502, last record
        + _batch(1, ts=502)  # equal max later: the first batch holding it wins
    )
    info = validate_batches(memoryview(buf), from_client=False)
    assert info.batch_count == 3
    assert info.record_count == 6
    assert info.max_timestamp == 502
    assert info.offset_delta_of_max_timestamp == 4  # last record of the second batch
    assert (info.producer_id, info.producer_epoch, info.base_sequence) == (5, 1, 0)
    assert info.is_transactional is False
    assert info.compression == Compression.NONE
    assert info.size == len(buf)
    assert (info.first_offset, info.last_offset) == (0, 0)
    assert info.offsets_monotonic is False  # every batch was built at base offset 0


def test_validate_first_batch_fields_for_a_producer() -> None:
    info = validate_batches(
        _batch(4, producer_id=9, producer_epoch=3, base_sequence=12, is_transactional=True)
    )
    assert (info.producer_id, info.producer_epoch, info.base_sequence) == (9, 3, 12)
    assert info.is_transactional
    assert (info.first_offset, info.last_offset, info.offsets_monotonic) == (0, 3, True)


def test_validate_without_timestamps() -> None:
    info = validate_batches(build_batch([RecordInput(b"k", b"v"), RecordInput(b"k", b"w")]))
    assert info.max_timestamp == -1
    assert info.offset_delta_of_max_timestamp == -1


def test_validate_empty_buffer() -> None:
    with pytest.raises(InvalidRecordError):
        validate_batches(b"")
    info = validate_batches(b"", from_client=False)
    assert (info.batch_count, info.record_count, info.size) == (0, 0, 0)


def test_validate_checks_headers_not_records() -> None:
    # Garbage in place of gzip data, under a correct CRC: the header path accepts it
    # (the broker does not decompress on produce); decoding the records refuses it.
    buf = bytearray(_batch(2, compression=Compression.GZIP))
    buf[BATCH_OVERHEAD:] = b"\x00" * (len(buf) - BATCH_OVERHEAD)
    _fix_crc(buf)
    assert validate_batches(buf).record_count == 2
    with pytest.raises(CorruptRecordError):
        decode_records(BatchView(memoryview(buf), 0))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), codec=codecs)
def test_flipping_any_checked_byte_is_corrupt(data: st.DataObject, codec: Compression) -> None:
    buf = bytearray(_batch(3, compression=codec))
    # Every byte but baseOffset (0-7) and partitionLeaderEpoch (12-15), which the CRC
    # does not cover because the broker rewrites them.
    position = data.draw(
        st.one_of(st.integers(8, 11), st.integers(MAGIC_OFFSET, len(buf) - 1)), label="position"
    )
    buf[position] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(CorruptRecordError):
        validate_batches(buf)
    with pytest.raises(CorruptRecordError):
        validate_batches(buf, from_client=False)


def test_record_too_large() -> None:
    data = _batch()
    assert validate_batches(data, max_batch_bytes=len(data)).size == len(data)
    with pytest.raises(RecordTooLargeError):
        validate_batches(data, max_batch_bytes=len(data) - 1)
    with pytest.raises(RecordTooLargeError):
        validate_batches(_batch(1) + data, max_batch_bytes=len(data) - 1)


@pytest.mark.parametrize("codec_id", [5, 6, 7])
def test_unknown_codec_is_unsupported(codec_id: int) -> None:
    with pytest.raises(UnsupportedCompressionError):
        validate_batches(_patched(_batch(), ATTRIBUTES_OFFSET, ">h", codec_id))


@pytest.mark.parametrize(
    ("field", "fmt", "value"),
    [
        (RECORDS_COUNT_OFFSET, ">i", 0),  # refused as INVALID_RECORD, like Kafka
        (RECORDS_COUNT_OFFSET, ">i", 2),  # != last_offset_delta + 1
        (LAST_OFFSET_DELTA_OFFSET, ">i", 5),
        (LAST_OFFSET_DELTA_OFFSET, ">i", -1),
        (ATTRIBUTES_OFFSET, ">h", 0x20),  # control batch from a client
    ],
)
def test_client_rules(field: int, fmt: str, value: int) -> None:
    with pytest.raises(InvalidRecordError):
        validate_batches(_patched(_batch(), field, fmt, value))


def test_client_base_offset_must_be_zero() -> None:
    data = _batch(base_offset=3)
    with pytest.raises(InvalidRecordError):
        validate_batches(data)
    assert validate_batches(data, from_client=False).first_offset == 3


def test_client_producer_id_needs_a_sequence() -> None:
    with pytest.raises(InvalidRecordError):
        validate_batches(_batch(producer_id=1, producer_epoch=0, base_sequence=-1))


def test_replicated_batches_may_be_control_or_emptied() -> None:
    control = _batch(1, is_control=True, is_transactional=True, producer_id=1, producer_epoch=0)
    emptied = _patched(_batch(3), RECORDS_COUNT_OFFSET, ">i", 0)  # cleaner emptied it
    info = validate_batches(control + bytes(emptied), from_client=False)
    assert info.batch_count == 2 and info.record_count == 4


def test_non_client_still_refuses_impossible_counts() -> None:
    for field, value in ((RECORDS_COUNT_OFFSET, -1), (LAST_OFFSET_DELTA_OFFSET, -2)):
        with pytest.raises(CorruptRecordError):
            validate_batches(_patched(_batch(), field, ">i", value), from_client=False)
    # More uncompressed records than the bytes can hold (7 bytes is the minimum).
    with pytest.raises(CorruptRecordError):
        validate_batches(_patched(_batch(3), RECORDS_COUNT_OFFSET, ">i", 10_000), from_client=False)


# --- assign_offsets ------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.tuples(record_lists, codecs), min_size=1, max_size=5),
    first_offset=st.integers(0, 2**62),
)
def test_assign_offsets_numbers_batches_consecutively(
    batches: list[tuple[list[RecordInput], Compression]], first_offset: int
) -> None:
    buf = bytearray(b"".join(build_batch(r, compression=c) for r, c in batches))
    last = assign_offsets(buf, first_offset)
    total = sum(len(r) for r, _ in batches)
    assert last == first_offset + total - 1
    expected_base = first_offset
    views = list(iter_batches(buf))
    for view, (records, _) in zip(views, batches, strict=True):
        assert view.base_offset == expected_base
        assert view.crc_is_valid()
        assert [r.offset for r in decode_records(view)] == list(
            range(expected_base, expected_base + len(records))
        )
        expected_base += len(records)
    info = validate_batches(buf, from_client=False)
    assert (info.first_offset, info.last_offset, info.offsets_monotonic) == (
        first_offset,
        last,
        True,
    )


def test_assign_offsets_on_a_memoryview_slice_and_edge_cases() -> None:
    backing = bytearray(b"\xee" * 5 + _batch(2) + _batch(3) + b"\xee" * 5)
    view = memoryview(backing)[5:-5]
    assert assign_offsets(view, 10) == 14
    assert backing[:5] == b"\xee" * 5 and backing[-5:] == b"\xee" * 5
    assert [v.base_offset for v in iter_batches(view)] == [10, 12]
    assert assign_offsets(bytearray(), 7) == 6
    with pytest.raises(TypeError):
        assign_offsets(memoryview(_batch()), 0)  # read-only
    with pytest.raises(CorruptRecordError):
        assign_offsets(bytearray(_batch())[:-1], 0)


# --- set_log_append_time / set_partition_leader_epoch -------------------------------


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.tuples(record_lists, codecs), min_size=1, max_size=3),
    now=st.integers(0, 2**45),
)
def test_set_log_append_time_keeps_crc_valid(
    batches: list[tuple[list[RecordInput], Compression]], now: int
) -> None:
    buf = bytearray(b"".join(build_batch(r, compression=c) for r, c in batches))
    set_log_append_time(buf, now)
    for view, (records, codec) in zip(iter_batches(buf), batches, strict=True):
        assert view.crc_is_valid()
        assert view.timestamp_type == TimestampType.LOG_APPEND_TIME
        assert view.max_timestamp == now
        assert view.base_timestamp == records[0].timestamp  # untouched, as in Kafka
        assert view.compression == codec  # other attribute bits untouched
        assert {r.timestamp for r in decode_records(view)} == {now}
    info = validate_batches(buf, from_client=False)
    assert info.max_timestamp == now


def test_set_log_append_time_is_idempotent() -> None:
    buf = bytearray(_batch(is_transactional=True, producer_id=1, producer_epoch=0, base_sequence=0))
    set_log_append_time(buf, 99)
    once = bytes(buf)
    set_log_append_time(buf, 99)
    assert bytes(buf) == once
    assert BatchView(memoryview(buf), 0).is_transactional


def test_set_partition_leader_epoch() -> None:
    buf = bytearray(_batch(2) + _batch(3, compression=Compression.SNAPPY))
    set_partition_leader_epoch(buf, 17)
    views = list(iter_batches(buf))
    assert [v.partition_leader_epoch for v in views] == [17, 17]
    assert all(v.crc_is_valid() for v in views)
    with pytest.raises(TypeError):
        set_partition_leader_epoch(bytes(buf), 1)  # type: ignore[arg-type]
