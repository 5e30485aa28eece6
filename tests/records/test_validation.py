"""Record validation (moldau.records.validation), run with each implementation of the walk.

Every test runs once with the C walk (``_scan.c``, skipped if it is not built) and
once with the pure-Python twin; a property test also checks that both return
exactly the same result on arbitrary bytes.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.records.builders import batch_of, check, record_bytes, records

from moldau.records import (
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    BatchView,
    Compression,
    CorruptRecordError,
    InvalidRecordError,
    RecordInput,
    RecordTooLargeError,
    TimestampType,
    build_batch,
    compress,
    decode_records,
    decompress,
    encode_varint,
    validation,
)
from moldau.records.batch import _crc_of
from moldau.records.validation import RecordValidationError

from .strategies import codecs, record_lists

# -- sound batches pass ----------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=record_lists, codec=codecs)
def test_every_batch_build_batch_makes_passes(impl: str, items: list[RecordInput], codec: Compression) -> None:
    buf = bytearray(build_batch(items, compression=codec))
    before = bytes(buf)
    summary = check(buf)
    assert summary.record_count == len(items)
    assert summary.max_timestamps_corrected == 0
    assert bytes(buf) == before


def test_headers_and_null_values_pass(impl: str) -> None:
    payload = record_bytes(0, b"k", None, headers=[(b"h", b"x"), (b"", None)]) + record_bytes(1)
    check(batch_of(payload, 2))


# -- malformed records: INVALID_RECORD with Kafka's words ------------------------------


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.LZ4, Compression.ZSTD])
@pytest.mark.parametrize(
    ("payload", "count", "message"),
    [
        (records(3, value=b"v" * 20), 4, "premature EOF reached"),
        (records(3), 2, "records still remaining"),
        (records(2) + b"\x00", 2, "records still remaining"),
        (records(1) + b"\xff" * 11, 2, "invalid record structure"),
        (record_bytes(0, length=200), 1, "but instead the buffer has only"),
        (record_bytes(0, raw_body=b"\x00\x00\x00\x02k\x02v\x00\x00"), 1, "expected to read 9"),
        (record_bytes(0, raw_body=b"\x00\x00\x00\x02k\x02v"), 1, "invalid record structure"),
        (record_bytes(0, raw_body=b"\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00"), 1, "structure"),
        (record_bytes(0, raw_body=b"\x00\x00\xff\xff\xff\xff\xff\x7f\x02k\x02v\x00"), 1, "structure"),
        (record_bytes(0, raw_body=b"\x00\x00\x00\x02k\x02v\x01"), 1, "number of record headers -1"),
        (record_bytes(0, raw_body=b"\x00\x00\x00\x02k\x02v\x0a\x00"), 1, "larger than the remaining"),
        (record_bytes(0, raw_body=b"\x00\x00\x00\x02k\x02v\x02\x01\x00"), 1, "negative header key size -1"),
        (record_bytes(0, raw_body=b"\x00\x00\x00\x03k\x02v\x00"), 1, "structure"),  # key length -2
        (record_bytes(0, raw_body=b"\x00\x00\x00\x02k\x20v\x00"), 1, "structure"),  # value overruns
        (record_bytes(0, raw_body=b"") + bytes(6), 1, "structure"),
        (record_bytes(1) + record_bytes(0), 2, "offset delta 1"),
        (record_bytes(0) + record_bytes(2), 2, "offset delta 2"),
        (record_bytes(0) + record_bytes(0), 2, "offset delta 0"),
    ],
    ids=[
        "count-too-high", "count-too-low", "trailing-byte", "bad-length-varint",
        "length-past-end", "length-too-long", "length-too-short", "long-timestamp-varlong",
        "long-offset-varint", "header-count-negative", "header-count-huge",
        "header-key-negative", "key-length-minus-2", "value-overruns", "empty-record",
        "deltas-1-0", "deltas-0-2", "deltas-0-0",
    ],
)
def test_malformed_records_are_invalid_record(
    impl: str, codec: Compression, payload: bytes, count: int, message: str
) -> None:
    buf = batch_of(payload, count, codec=codec)
    before = bytes(buf)
    with pytest.raises(InvalidRecordError, match=message) as raised:
        check(buf, topic_partition="t-0")
    assert raised.value.error_code == 87
    assert "in topic partition t-0" in str(raised.value)
    assert bytes(buf) == before, "a refused buffer is left as it came"


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD])
def test_garbage_compressed_payload_is_corrupt_message(impl: str, codec: Compression) -> None:
    buf = batch_of(b"", 3, codec=Compression.NONE)
    garbage = b"\x04\x22\x4d\x18" + b"\x00not a compressed stream at all" * 3
    buf = batch_of(garbage, 3)  # records region = garbage, then claim a codec
    buf[ATTRIBUTES_OFFSET + 1] |= int(codec)
    struct.pack_into(">I", buf, CRC_OFFSET, _crc_of(memoryview(buf), ATTRIBUTES_OFFSET, len(buf)))
    with pytest.raises(CorruptRecordError) as raised:
        check(buf)
    assert raised.value.error_code == 2


def test_transactional_batch_without_producer_id_is_invalid(impl: str) -> None:
    buf = batch_of(records(2), 2, attributes=0x10)
    with pytest.raises(InvalidRecordError, match="without a producer id"):
        check(buf)
    check(batch_of(records(2), 2, attributes=0x10, producer_id=7, base_sequence=0))


# -- keyless records on compacted topics: per-record errors ------------------------------


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.SNAPPY])
def test_keyless_records_on_a_compacted_topic_are_named(impl: str, codec: Compression) -> None:
    keyless = {3, 10, 11, 99}
    payload = b"".join(
        record_bytes(i, None if i in keyless else b"key%d" % i) for i in range(100)
    )
    buf = batch_of(payload, 100, codec=codec)
    with pytest.raises(RecordValidationError) as raised:
        check(buf, compacted=True, topic_partition="c-0")
    assert [i for i, _ in raised.value.record_errors] == sorted(keyless)
    assert all(
        m == "Compacted topic cannot accept message without key in topic partition c-0."
        for _, m in raised.value.record_errors
    )
    assert raised.value.error_code == 87
    assert str(raised.value).startswith("One or more records have been rejected due to 4 record")
    check(buf, compacted=False)  # fine on a topic that is not compacted
    empty_key = batch_of(records(2, key=b""), 2)
    check(empty_key, compacted=True)  # an empty key is a key (Kafka: only null is missing)


# -- maxTimestamp: corrected as Kafka does, CRC recomputed ----------------------------------


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.GZIP])
def test_wrong_max_timestamp_is_corrected(impl: str, codec: Compression) -> None:
    payload = record_bytes(0, timestamp_delta=5) + record_bytes(1, timestamp_delta=50)
    buf = batch_of(payload, 2, codec=codec, base_timestamp=1_000, max_timestamp=900)
    summary = check(buf)
    assert summary.max_timestamps_corrected == 1
    view = BatchView(buf)
    assert view.max_timestamp == 1_050
    assert view.crc_is_valid()
    assert [r.timestamp for r in decode_records(view)] == [1_005, 1_050]


def test_max_timestamp_left_alone_for_log_append_time(impl: str) -> None:
    buf = batch_of(records(2, timestamp_delta=7), 2, max_timestamp=5)
    before = bytes(buf)
    assert check(buf, log_append_time=True).max_timestamps_corrected == 0
    assert bytes(buf) == before
    lat = batch_of(records(2), 2, max_timestamp=5, attributes=int(TimestampType.LOG_APPEND_TIME) << 3)
    assert check(lat).max_timestamps_corrected == 0


def test_several_batches_are_each_walked(impl: str) -> None:
    good = build_batch([RecordInput(b"k", b"v")] * 3)
    bad = batch_of(record_bytes(1) + record_bytes(0), 2)
    with pytest.raises(InvalidRecordError, match="offset delta"):
        check(bytearray(good + bytes(bad)))
    assert check(bytearray(good * 3)).record_count == 9


# -- both implementations agree on anything ------------------------------------------------


def _fragments() -> st.SearchStrategy[bytes]:
    """Byte soup made mostly of plausible record pieces, so walks get deep."""
    piece = st.one_of(
        st.integers(-3, 300).map(encode_varint),
        st.binary(max_size=6),
        st.just(b"\x00"),
        st.just(b"\xff" * 10),
        st.builds(lambda i: record_bytes(i), st.integers(0, 4)),
    )
    return st.lists(piece, max_size=25).map(b"".join)


@pytest.mark.skipif("c" not in validation.IMPLEMENTATIONS, reason="C extension not built")
@settings(max_examples=1500, deadline=None)
@given(
    data=_fragments(),
    count=st.integers(-2, 6),
    base=st.sampled_from([-1, 0, 1_000, 2**63 - 1, -(2**63)]),
    keys=st.booleans(),
    bounds=st.sampled_from([(-(2**63), 2**63 - 1), (0, 5), (995, 1_010), (2**62, 2**63 - 1)]),
)
def test_c_and_python_walks_agree(
    data: bytes, count: int, base: int, keys: bool, bounds: tuple[int, int]
) -> None:
    c = validation.IMPLEMENTATIONS["c"](data, count, base, keys, *bounds)
    py = validation.IMPLEMENTATIONS["python"](data, count, base, keys, *bounds)
    assert c == py


@pytest.mark.skipif("c" not in validation.IMPLEMENTATIONS, reason="C extension not built")
@settings(max_examples=200, deadline=None)
@given(items=record_lists, flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_c_and_python_agree_on_mutated_records(items: list[RecordInput], flips: list[tuple[int, int]]) -> None:
    payload = bytearray(BatchView(build_batch(items)).records_bytes())
    for where, byte in flips:
        payload[where % len(payload)] = byte
    for count in (len(items) - 1, len(items), len(items) + 1):
        c = validation.IMPLEMENTATIONS["c"](bytes(payload), count, 1_000, True, 900, 2**40)
        py = validation.IMPLEMENTATIONS["python"](memoryview(payload), count, 1_000, True, 900, 2**40)
        assert c == py


def test_env_var_forces_the_python_walk(tmp_path: object) -> None:
    import subprocess
    import sys

    code = "from moldau.records import validation as v; print(v.IMPLEMENTATION)"
    env = {"MOLDAU_PURE_PYTHON": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "python"
    expected = "c" if "c" in validation.IMPLEMENTATIONS else "python"
    out = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


# -- decompression is bounded ---------------------------------------------------------------


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD])
def test_decompression_is_bounded(codec: Compression) -> None:
    data = bytes(range(256)) * 4000
    packed = compress(codec, data)
    assert decompress(codec, packed, max_size=len(data)) == data
    with pytest.raises(RecordTooLargeError, match=f"more than {len(data) - 1} bytes"):
        decompress(codec, packed, max_size=len(data) - 1)


def test_a_zstd_bomb_is_refused_without_expanding_it(impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few KB of zstd that would expand to 256 MiB: MESSAGE_TOO_LARGE, not 256 MiB of RAM."""
    monkeypatch.setattr(validation, "MAX_DECOMPRESSED_BATCH_BYTES", 1 << 20)
    one = record_bytes(0, b"k", bytes(1 << 16))
    bomb = compress(Compression.ZSTD, one * 4096)  # the same record 4096 times: 256 MiB
    assert len(bomb) < 64 << 10
    buf = batch_of(bomb, 4096)
    buf[ATTRIBUTES_OFFSET + 1] |= int(Compression.ZSTD)
    struct.pack_into(">I", buf, CRC_OFFSET, _crc_of(memoryview(buf), ATTRIBUTES_OFFSET, len(buf)))
    with pytest.raises(RecordTooLargeError) as raised:
        check(buf)
    assert raised.value.error_code == 10


# -- timestamps outside message.timestamp.*.max.ms: per-record INVALID_TIMESTAMP ----------------


def test_records_out_of_the_timestamp_bounds_are_named(impl: str) -> None:
    deltas = [0, 5_000, 10, -5_000, 20]  # records 1 and 3 fall outside [base - 100, base + 100]
    payload = b"".join(record_bytes(i, timestamp_delta=d) for i, d in enumerate(deltas))
    buf = batch_of(payload, 5, base_timestamp=100_000, max_timestamp=105_000)
    before = bytes(buf)
    with pytest.raises(RecordValidationError) as raised:
        check(buf, timestamp_bounds=(99_900, 100_100))
    assert raised.value.error_code == 32
    assert str(raised.value) == "One or more records have been rejected due to invalid timestamp"
    assert raised.value.record_errors == [
        (1, "Timestamp 105000 of message with offset 1 is out of range. "
            "The timestamp should be within [99900, 100100]"),
        (3, "Timestamp 95000 of message with offset 3 is out of range. "
            "The timestamp should be within [99900, 100100]"),
    ]  # fmt: skip
    assert bytes(buf) == before
    check(buf, timestamp_bounds=(90_000, 110_000))


def test_key_errors_come_before_timestamp_errors(impl: str) -> None:
    payload = record_bytes(0, None, timestamp_delta=9_999) + record_bytes(1, b"k", timestamp_delta=9_999)
    buf = batch_of(payload, 2, base_timestamp=0, max_timestamp=9_999)
    with pytest.raises(RecordValidationError) as raised:
        check(buf, compacted=True, timestamp_bounds=(0, 100), topic_partition="c-0")
    assert raised.value.error_code == 32  # any timestamp error makes it INVALID_TIMESTAMP
    assert [(i, m.split(" ")[0]) for i, m in raised.value.record_errors] == [
        (0, "Compacted"),
        (1, "Timestamp"),
    ]


def test_records_without_timestamp_are_not_bounded(impl: str) -> None:
    buf = batch_of(records(3), 3, base_timestamp=-1, max_timestamp=-1)
    check(buf, timestamp_bounds=(1_000, 2_000))


def test_producers_may_not_set_log_append_time(impl: str) -> None:
    lat = int(TimestampType.LOG_APPEND_TIME) << 3
    buf = batch_of(records(2), 2, max_timestamp=5_000, attributes=lat)
    with pytest.raises(RecordValidationError, match="invalid timestamp") as raised:
        check(buf, log_append_time=True)
    assert [i for i, _ in raised.value.record_errors] == [0, 1]
    assert "should not set timestamp type to LogAppendTime" in raised.value.record_errors[0][1]
    check(buf)  # on a CreateTime topic without bounds Kafka lets it through
    with pytest.raises(RecordValidationError):  # ... but checks its maxTimestamp against them
        check(buf, timestamp_bounds=(0, 1_000))


# -- any sound batch, broken in one known way, gets the right refusal -----------------------

MUTATIONS = ["trailing-bytes", "count-plus-one", "count-minus-one", "swap-deltas", "bad-length"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(st.builds(RecordInput, key=st.binary(max_size=8), value=st.binary(max_size=40)), min_size=2, max_size=12),
    codec=codecs,
    mutation=st.sampled_from(MUTATIONS),
    where=st.integers(0, 100),
)
def test_each_mutation_is_refused_with_its_error(
    impl: str, items: list[RecordInput], codec: Compression, mutation: str, where: int
) -> None:
    parts = [record_bytes(i, r.key, r.value, timestamp_delta=i) for i, r in enumerate(items)]
    count = len(parts)
    if mutation == "trailing-bytes":
        parts.append(b"\x00" * (1 + where % 7))
    elif mutation == "count-plus-one":
        count += 1
        parts.append(b"")  # nothing for it: premature EOF, or too few bytes for the header
    elif mutation == "count-minus-one":
        count -= 1
    elif mutation == "swap-deltas":
        i = where % (len(items) - 1)
        parts[i], parts[i + 1] = (
            record_bytes(i + 1, items[i].key, items[i].value, timestamp_delta=i),
            record_bytes(i, items[i + 1].key, items[i + 1].value, timestamp_delta=i + 1),
        )
    else:  # one record's length varint one byte too long or short
        i = where % len(items)
        body = parts[i][len(encode_varint(len(parts[i]) - 1)) :]
        real = len(parts[i]) - len(encode_varint(len(parts[i]) - 1))
        parts[i] = encode_varint(real + (1 if where % 2 else -1)) + body
    buf = batch_of(b"".join(parts), count, codec=codec)
    with pytest.raises((InvalidRecordError, CorruptRecordError)) as raised:
        check(buf)
    if mutation == "count-plus-one" and codec == Compression.NONE:
        return  # the header check may already see too few bytes (CORRUPT_MESSAGE)
    assert type(raised.value) is InvalidRecordError, raised.value
    expected = {
        "trailing-bytes": "records still remaining",
        "count-plus-one": "premature EOF",
        "count-minus-one": "records still remaining",
        "swap-deltas": "offset delta",
    }.get(mutation, "")
    assert expected in str(raised.value)
