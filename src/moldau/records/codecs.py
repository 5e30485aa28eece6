"""Compression codecs for record batch payloads, in the framings Kafka clients use.

A compressed v2 batch compresses the concatenated records (everything after the
61-byte header) as one stream. Each codec has a wire framing fixed by the Java
client, and every other client reads that framing; so :func:`compress` writes what
the Java client writes, and :func:`decompress` additionally accepts what other
clients are known to send:

- GZIP: a gzip stream (RFC 1952; Java's ``GZIPOutputStream``), not raw zlib.
  Decompression accepts concatenated gzip members, as ``GZIPInputStream`` does.
- SNAPPY: the Java client uses xerial snappy-java's ``SnappyOutputStream``: a
  16-byte header (``\\x82SNAPPY\\x00``, version 1, compatible version 1, both
  big-endian int32), then blocks of ``int32 compressed length + raw snappy`` of at
  most 32 KiB of input each. librdkafka *produces* plain raw snappy (one block, no
  framing) but reads both, as does snappy-java itself; so we decompress both
  (the magic header tells them apart) and compress with xerial framing, which every
  client reads.
- LZ4: the LZ4 *frame* format (not raw blocks), as Java's
  ``KafkaLZ4BlockOutputStream`` writes it for magic >= 1: independent 64 KiB
  blocks, no block or content checksum, no content size. Decompression accepts any
  valid frame (librdkafka writes content checksums, for example).
- ZSTD: a standard zstd frame (level 3 by default, like zstd-jni); decompression
  accepts frames without a content size and concatenated frames.

Malformed input of any codec raises :class:`CorruptRecordError` (Kafka answers
CORRUPT_MESSAGE), never the codec library's own exception type.

Choice of libraries (see STYLE.md, measured): ``zlib`` for gzip, ``lz4.frame``
(about 3x faster than cramjam's lz4 at decompression), ``cramjam`` for snappy and zstd.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import cramjam
import lz4.frame

from moldau.records.batch import Compression
from moldau.records.errors import CorruptRecordError, UnsupportedCompressionError

__all__ = ["XERIAL_SNAPPY_MAGIC", "compress", "decompress"]

Buffer = bytes | bytearray | memoryview

#: First 8 bytes of a xerial snappy-java stream.
XERIAL_SNAPPY_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = XERIAL_SNAPPY_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_HEADER_SIZE = len(_XERIAL_HEADER)  # 16
#: snappy-java's default block size, the one Kafka's Java client uses.
_XERIAL_BLOCK_SIZE = 32 * 1024
_unpack_block_length = struct.Struct(">i").unpack_from
_pack_block_length = struct.Struct(">i").pack

#: Compression levels used when the caller gives none, matching the Java client's
#: defaults (Deflater.DEFAULT_COMPRESSION, zstd-jni's 3).
_GZIP_DEFAULT_LEVEL = 6
_ZSTD_DEFAULT_LEVEL = 3


# --- gzip --------------------------------------------------------------------------


def _gzip_compress(data: Buffer, level: int | None) -> bytes:
    compressor = zlib.compressobj(
        _GZIP_DEFAULT_LEVEL if level is None else level, zlib.DEFLATED, 16 + zlib.MAX_WBITS
    )
    return compressor.compress(data) + compressor.flush()


def _gzip_decompress(data: Buffer) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    chunks = [decompressor.decompress(data)]
    while True:
        if not decompressor.eof:
            raise CorruptRecordError("truncated gzip stream")
        rest = decompressor.unused_data
        # Concatenated members are legal (GZIPInputStream reads them all); anything
        # else after the last member is ignored, as GZIPInputStream does.
        if not rest.startswith(b"\x1f\x8b"):
            break
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunks.append(decompressor.decompress(rest))
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# --- snappy ------------------------------------------------------------------------


def _snappy_compress(data: Buffer, level: int | None) -> bytes:
    del level  # snappy has no levels
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    parts = [_XERIAL_HEADER]
    compress_raw = cramjam.snappy.compress_raw
    for start in range(0, len(view), _XERIAL_BLOCK_SIZE):
        block = bytes(compress_raw(view[start : start + _XERIAL_BLOCK_SIZE]))
        parts.append(_pack_block_length(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: Buffer) -> bytes:
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    decompress_raw = cramjam.snappy.decompress_raw
    if len(view) < _XERIAL_HEADER_SIZE or view[:8] != XERIAL_SNAPPY_MAGIC:
        # Raw snappy, as librdkafka sends it.
        return bytes(decompress_raw(view))
    # xerial framing. Version and compat fields are not checked: there has only
    # ever been one framing, and some producers write them little-endian.
    parts: list[bytes] = []
    pos = _XERIAL_HEADER_SIZE
    end = len(view)
    while pos < end:
        if end - pos < 4:
            raise CorruptRecordError("truncated xerial snappy block length")
        block_length = _unpack_block_length(view, pos)[0]
        pos += 4
        if block_length < 0 or pos + block_length > end:
            raise CorruptRecordError(f"impossible xerial snappy block length {block_length}")
        parts.append(bytes(decompress_raw(view[pos : pos + block_length])))
        pos += block_length
    return b"".join(parts)


# --- lz4 ---------------------------------------------------------------------------


def _lz4_compress(data: Buffer, level: int | None) -> bytes:
    return lz4.frame.compress(
        data,
        compression_level=0 if level is None else level,
        block_size=lz4.frame.BLOCKSIZE_MAX64KB,
        block_linked=False,
        content_checksum=False,
        block_checksum=False,
        store_size=False,
    )


def _lz4_decompress(data: Buffer) -> bytes:
    return lz4.frame.decompress(data)


# --- zstd --------------------------------------------------------------------------


def _zstd_compress(data: Buffer, level: int | None) -> bytes:
    return bytes(cramjam.zstd.compress(data, _ZSTD_DEFAULT_LEVEL if level is None else level))


def _zstd_decompress(data: Buffer) -> bytes:
    return bytes(cramjam.zstd.decompress(data))


# --- dispatch ----------------------------------------------------------------------

_COMPRESSORS: dict[int, Callable[[Buffer, int | None], bytes]] = {
    Compression.GZIP: _gzip_compress,
    Compression.SNAPPY: _snappy_compress,
    Compression.LZ4: _lz4_compress,
    Compression.ZSTD: _zstd_compress,
}

_DECOMPRESSORS: dict[int, Callable[[Buffer], bytes]] = {
    Compression.GZIP: _gzip_decompress,
    Compression.SNAPPY: _snappy_decompress,
    Compression.LZ4: _lz4_decompress,
    Compression.ZSTD: _zstd_decompress,
}


def compress(codec: Compression | int, data: Buffer, *, level: int | None = None) -> bytes:
    """Compress ``data`` in the framing the Java client writes for ``codec``.

    ``level`` is the codec's own level (gzip 1-9, lz4 0-16, zstd -131072..22);
    ``None`` picks the Java client's default. ``Compression.NONE`` returns the bytes
    unchanged; an unknown codec id raises :class:`UnsupportedCompressionError`.
    """
    if codec == Compression.NONE:
        return bytes(data)
    compressor = _COMPRESSORS.get(codec)
    if compressor is None:
        raise UnsupportedCompressionError(f"unknown compression codec id {int(codec)}")
    return compressor(data, level)


def decompress(codec: Compression | int, data: Buffer) -> bytes:
    """Decompress a batch payload written with ``codec`` (any framing clients send).

    Raises :class:`CorruptRecordError` if ``data`` is not valid for the codec and
    :class:`UnsupportedCompressionError` for an unknown codec id.
    """
    if codec == Compression.NONE:
        return bytes(data)
    decompressor = _DECOMPRESSORS.get(codec)
    if decompressor is None:
        raise UnsupportedCompressionError(f"unknown compression codec id {int(codec)}")
    try:
        return decompressor(data)
    except CorruptRecordError:
        raise
    except (zlib.error, cramjam.DecompressionError, RuntimeError, ValueError) as exc:
        raise CorruptRecordError(
            f"cannot decompress {Compression(codec).name} payload: {exc}"
        ) from exc
