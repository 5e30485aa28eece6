"""Codecs: round trips, the framings real clients use, and corrupt input."""

from __future__ import annotations

import contextlib
import gzip
import struct

import cramjam
import lz4.frame
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import codec as kafka_codec

from moldau.records import (
    XERIAL_SNAPPY_MAGIC,
    Compression,
    CorruptRecordError,
    UnsupportedCompressionError,
    compress,
    decompress,
)

ALL_CODECS = list(Compression)
COMPRESSING_CODECS = [c for c in Compression if c != Compression.NONE]

#: Compressible and long enough to span several 32 KiB xerial / 64 KiB lz4 blocks.
BIG = b"".join(b"record %d with a repeated payload; " % i for i in range(6000))


@pytest.mark.parametrize("codec", ALL_CODECS, ids=lambda c: c.name)
@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=2000))
def test_round_trip(codec: Compression, data: bytes) -> None:
    assert decompress(codec, compress(codec, data)) == data


@pytest.mark.parametrize("codec", ALL_CODECS, ids=lambda c: c.name)
def test_round_trip_large_and_from_views(codec: Compression) -> None:
    compressed = compress(codec, memoryview(bytearray(BIG)))
    if codec != Compression.NONE:
        assert len(compressed) < len(BIG)
    assert decompress(codec, memoryview(bytearray(compressed))) == BIG
    assert decompress(codec, memoryview(compressed)[0:]) == BIG


@pytest.mark.parametrize(
    "codec", [Compression.GZIP, Compression.LZ4, Compression.ZSTD], ids=lambda c: c.name
)
def test_compression_levels_change_the_output_not_the_content(codec: Compression) -> None:
    fast, best = compress(codec, BIG, level=1), compress(codec, BIG, level=9)
    assert fast != best
    assert decompress(codec, fast) == decompress(codec, best) == BIG


def test_unknown_codec_is_unsupported() -> None:
    with pytest.raises(UnsupportedCompressionError):
        compress(5, b"x")
    with pytest.raises(UnsupportedCompressionError):
        decompress(7, b"x")


# --- gzip ----------------------------------------------------------------------------


def test_gzip_is_a_gzip_stream_like_javas_gzipoutputstream() -> None:
    compressed = compress(Compression.GZIP, BIG)
    assert compressed[:2] == b"\x1f\x8b"
    assert gzip.decompress(compressed) == BIG
    assert kafka_codec.gzip_decode(compressed) == BIG


def test_gzip_accepts_concatenated_members() -> None:
    data = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decompress(Compression.GZIP, data) == b"first second"


# --- snappy --------------------------------------------------------------------------


def test_snappy_compresses_with_xerial_framing_like_the_java_client() -> None:
    compressed = compress(Compression.SNAPPY, BIG)
    assert compressed[:8] == XERIAL_SNAPPY_MAGIC
    assert struct.unpack(">ii", compressed[8:16]) == (1, 1)
    # Blocks of at most 32 KiB of input: walk them.
    pos, blocks = 16, 0
    while pos < len(compressed):
        (length,) = struct.unpack_from(">i", compressed, pos)
        block = bytes(cramjam.snappy.decompress_raw(compressed[pos + 4 : pos + 4 + length]))
        assert len(block) <= 32 * 1024
        pos += 4 + length
        blocks += 1
    assert pos == len(compressed)
    assert blocks == -(-len(BIG) // (32 * 1024))
    # An independent reader of the xerial format agrees.
    assert kafka_codec.snappy_decode(compressed) == BIG


def test_snappy_decompresses_raw_snappy_as_librdkafka_sends_it() -> None:
    raw = bytes(cramjam.snappy.compress_raw(BIG))
    assert decompress(Compression.SNAPPY, raw) == BIG
    assert decompress(Compression.SNAPPY, kafka_codec.snappy_encode(BIG, False)) == BIG


def test_snappy_decompresses_xerial_from_an_independent_encoder() -> None:
    for block_size in (1024, 32 * 1024):
        framed = kafka_codec.snappy_encode(BIG, True, block_size)
        assert decompress(Compression.SNAPPY, framed) == BIG


def test_snappy_xerial_tolerates_little_endian_version_fields() -> None:
    # Some producers (redpanda, per kafka-python's notes) write these little-endian.
    framed = bytearray(compress(Compression.SNAPPY, b"hello" * 100))
    framed[8:16] = struct.pack("<ii", 1, 1)
    assert decompress(Compression.SNAPPY, framed) == b"hello" * 100


def test_snappy_empty_payload() -> None:
    assert decompress(Compression.SNAPPY, compress(Compression.SNAPPY, b"")) == b""


@pytest.mark.parametrize(
    "payload",
    [
        XERIAL_SNAPPY_MAGIC + struct.pack(">ii", 1, 1) + b"\x00\x00",  # truncated length
        XERIAL_SNAPPY_MAGIC + struct.pack(">ii", 1, 1) + struct.pack(">i", 99) + b"ab",
        XERIAL_SNAPPY_MAGIC + struct.pack(">ii", 1, 1) + struct.pack(">i", -1),
    ],
)
def test_snappy_bad_xerial_framing_is_corrupt(payload: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        decompress(Compression.SNAPPY, payload)


# --- lz4 -----------------------------------------------------------------------------


def test_lz4_frame_descriptor_matches_kafkas_java_writer() -> None:
    compressed = compress(Compression.LZ4, BIG)
    assert compressed[:4] == b"\x04\x22\x4d\x18"  # LZ4 frame magic
    flg, bd = compressed[4], compressed[5]
    assert flg >> 6 == 0b01  # version 1
    assert flg & 0x20  # independent blocks
    assert not flg & 0x10  # no block checksum
    assert not flg & 0x08  # no content size
    assert not flg & 0x04  # no content checksum
    assert (bd >> 4) & 0x7 == 4  # 64 KiB blocks
    assert lz4.frame.decompress(compressed) == BIG
    assert kafka_codec.lz4_decode(compressed) == BIG


def test_lz4_accepts_frames_with_checksums_and_sizes() -> None:
    frame = lz4.frame.compress(BIG, content_checksum=True, block_checksum=True, store_size=True)
    assert decompress(Compression.LZ4, frame) == BIG
    assert decompress(Compression.LZ4, kafka_codec.lz4_encode(BIG)) == BIG


# --- zstd ----------------------------------------------------------------------------


def test_zstd_interoperates_with_the_reference_library() -> None:
    compressed = compress(Compression.ZSTD, BIG)
    assert zstandard.ZstdDecompressor().decompress(compressed) == BIG
    assert kafka_codec.zstd_decode(compressed) == BIG


def test_zstd_accepts_frames_without_content_size_and_concatenated_frames() -> None:
    streamed = zstandard.ZstdCompressor(write_content_size=False).compress(BIG)
    assert decompress(Compression.ZSTD, streamed) == BIG
    two = zstandard.ZstdCompressor().compress(b"a" * 100) + zstandard.ZstdCompressor().compress(
        b"b" * 100
    )
    assert decompress(Compression.ZSTD, two) == b"a" * 100 + b"b" * 100


# --- corrupt input -------------------------------------------------------------------


@pytest.mark.parametrize("codec", COMPRESSING_CODECS, ids=lambda c: c.name)
def test_truncated_or_garbage_input_is_corrupt(codec: Compression) -> None:
    compressed = compress(codec, BIG)
    for bad in (b"", b"\x00" * 40, compressed[: len(compressed) // 2], compressed[:-1]):
        with pytest.raises(CorruptRecordError):
            decompress(codec, bad)


@pytest.mark.parametrize("codec", COMPRESSING_CODECS, ids=lambda c: c.name)
@settings(max_examples=60, deadline=None)
@given(garbage=st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_foreign_exceptions(
    codec: Compression, garbage: bytes
) -> None:
    with contextlib.suppress(CorruptRecordError):
        decompress(codec, garbage)
