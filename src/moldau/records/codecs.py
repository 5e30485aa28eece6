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

import mmap
import struct
import zlib
from collections.abc import Callable

import cramjam
import lz4.frame

from moldau.records.batch import Compression
from moldau.records.errors import (
    CorruptRecordError,
    RecordTooLargeError,
    UnsupportedCompressionError,
)

__all__ = ["MAX_DECOMPRESSED_BATCH_BYTES", "XERIAL_SNAPPY_MAGIC", "compress", "decompress"]

Buffer = bytes | bytearray | memoryview

#: First 8 bytes of a xerial snappy-java stream.
XERIAL_SNAPPY_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = XERIAL_SNAPPY_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_HEADER_SIZE = len(_XERIAL_HEADER)  # 16
#: snappy-java's default block size, the one Kafka's Java client uses.
_XERIAL_BLOCK_SIZE = 32 * 1024
_unpack_block_length = struct.Struct(">i").unpack_from
_pack_block_length = struct.Struct(">i").pack

#: Bound on the decompressed records of one batch from a client (64 MiB). Kafka has
#: none, but it streams records; this broker decompresses a batch whole to validate
#: it, so the bound keeps a tiny hostile payload from taking gigabytes. Real batches
#: are far below it (librdkafka and the Java client batch about 1 MiB or less).
MAX_DECOMPRESSED_BATCH_BYTES = 64 << 20
_UNBOUNDED = 1 << 62
_LZ4_FIRST_STEP = 64 << 10
#: Kafka batches of text-like records compress about 2-4x with lz4.
_LZ4_EXPANSION_GUESS = 4


def _too_large(max_size: int) -> RecordTooLargeError:
    return RecordTooLargeError(f"the batch's records decompress to more than {max_size} bytes")


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


def _gzip_decompress(data: Buffer, max_size: int) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    chunks = [decompressor.decompress(data, max_size + 1)]
    total = len(chunks[0])
    while True:
        if total > max_size:
            raise _too_large(max_size)
        if not decompressor.eof:
            raise CorruptRecordError("truncated gzip stream")
        rest = decompressor.unused_data
        # Concatenated members are legal (GZIPInputStream reads them all); anything
        # else after the last member is ignored, as GZIPInputStream does.
        if not rest.startswith(b"\x1f\x8b"):
            break
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunks.append(decompressor.decompress(rest, max_size + 1 - total))
        total += len(chunks[-1])
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


def _snappy_decompress(data: Buffer, max_size: int) -> bytes:
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    decompress_raw = cramjam.snappy.decompress_raw
    raw_length = cramjam.snappy.decompress_raw_len  # read from the block's header: cheap
    if len(view) < _XERIAL_HEADER_SIZE or view[:8] != XERIAL_SNAPPY_MAGIC:
        # Raw snappy, as librdkafka sends it.
        if raw_length(view) > max_size:
            raise _too_large(max_size)
        return bytes(decompress_raw(view))
    # xerial framing. Version and compat fields are not checked: there has only
    # ever been one framing, and some producers write them little-endian.
    parts: list[bytes] = []
    pos = _XERIAL_HEADER_SIZE
    end = len(view)
    total = 0
    while pos < end:
        if end - pos < 4:
            raise CorruptRecordError("truncated xerial snappy block length")
        block_length = _unpack_block_length(view, pos)[0]
        pos += 4
        if block_length < 0 or pos + block_length > end:
            raise CorruptRecordError(f"impossible xerial snappy block length {block_length}")
        block = view[pos : pos + block_length]
        total += raw_length(block)
        if total > max_size:
            raise _too_large(max_size)
        parts.append(bytes(decompress_raw(block)))
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


def _lz4_decompress(data: Buffer, max_size: int) -> bytes:
    # The library allocates ``max_length`` up front, so the output is asked for in
    # steps: the first sized for what a Kafka batch usually expands to (one call, no
    # join, for nearly every real batch), later ones doubling, and never more than
    # max_size + 1 in all. Like lz4.frame.decompress, anything after the first frame
    # is ignored.
    decompressor = lz4.frame.LZ4FrameDecompressor()
    step = min(max(_LZ4_FIRST_STEP, _LZ4_EXPANSION_GUESS * len(data)), max_size + 1)
    parts = [decompressor.decompress(data, max_length=step)]
    total = len(parts[0])
    while not decompressor.eof:
        if total > max_size:
            raise _too_large(max_size)
        if decompressor.needs_input:
            raise CorruptRecordError("truncated lz4 frame")
        step = min(2 * step, max_size + 1 - total)
        parts.append(decompressor.decompress(b"", max_length=step))
        total += len(parts[-1])
    if total > max_size:
        raise _too_large(max_size)
    return parts[0] if len(parts) == 1 else b"".join(parts)


# --- zstd --------------------------------------------------------------------------


def _zstd_compress(data: Buffer, level: int | None) -> bytes:
    return bytes(cramjam.zstd.compress(data, _ZSTD_DEFAULT_LEVEL if level is None else level))


def _zstd_decompress(data: Buffer, max_size: int) -> bytes:
    if max_size >= _UNBOUNDED:
        return bytes(cramjam.zstd.decompress(data))
    # cramjam has no bounded zstd stream; decompress into an anonymous mapping of
    # max_size + 1 bytes, whose pages only become memory where output is written.
    with mmap.mmap(-1, max_size + 1) as out:
        try:
            size = cramjam.zstd.decompress_into(data, out)
        except cramjam.DecompressionError as exc:
            if "whole buffer" in str(exc):  # the output did not fit
                raise _too_large(max_size) from None
            raise
        if size > max_size:
            raise _too_large(max_size)
        return out[:size]


# --- dispatch ----------------------------------------------------------------------

_COMPRESSORS: dict[int, Callable[[Buffer, int | None], bytes]] = {
    Compression.GZIP: _gzip_compress,
    Compression.SNAPPY: _snappy_compress,
    Compression.LZ4: _lz4_compress,
    Compression.ZSTD: _zstd_compress,
}

_DECOMPRESSORS: dict[int, Callable[[Buffer, int], bytes]] = {
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


def decompress(codec: Compression | int, data: Buffer, *, max_size: int | None = None) -> bytes:
    """Decompress a batch payload written with ``codec`` (any framing clients send).

    Raises :class:`CorruptRecordError` if ``data`` is not valid for the codec,
    :class:`UnsupportedCompressionError` for an unknown codec id, and
    :class:`RecordTooLargeError` if the output would exceed ``max_size`` bytes: a
    few KB of zstd can expand to gigabytes, so code that decompresses what a client
    sent bounds it (record validation passes ``MAX_DECOMPRESSED_BATCH_BYTES``);
    the output never grows much past the bound before the refusal.
    """
    if codec == Compression.NONE:
        return bytes(data)
    decompressor = _DECOMPRESSORS.get(codec)
    if decompressor is None:
        raise UnsupportedCompressionError(f"unknown compression codec id {int(codec)}")
    try:
        return decompressor(data, _UNBOUNDED if max_size is None else max_size)
    except (CorruptRecordError, RecordTooLargeError):
        raise
    except (zlib.error, cramjam.DecompressionError, RuntimeError, ValueError) as exc:
        raise CorruptRecordError(
            f"cannot decompress {Compression(codec).name} payload: {exc}"
        ) from exc
