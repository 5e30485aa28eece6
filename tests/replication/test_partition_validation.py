"""Partition.append_as_leader validates records before the broker recompresses them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tests.records.builders import batch_of, record_bytes
from tests.storage.helpers import open_log, read_all

from moldau.records import (
    Compression,
    CorruptRecordError,
    InvalidRecordError,
    RecordInput,
    RecordValidationError,
    build_batch,
    decode_records,
    iter_batches,
)
from moldau.records.batch import _crc_of
from moldau.replication.partition import Partition
from moldau.storage import LogConfig


def _partition(tmp_path: Path, compression_type: str, config: LogConfig | None = None) -> Partition:
    log = open_log(tmp_path / "t-0", config)
    partition = Partition(
        "t", 0, uuid.uuid4(), log, broker_id=1, leader=1, leader_epoch=0, replicas=[1], isr=[1]
    )
    partition.compression_type = compression_type
    return partition


@pytest.mark.parametrize("target", ["gzip", "lz4", "zstd", "uncompressed"])
@pytest.mark.parametrize("source", [Compression.NONE, Compression.SNAPPY])
def test_shuffled_offset_deltas_refused_before_recompressing(
    tmp_path: Path, impl: str, target: str, source: Compression
) -> None:
    partition = _partition(tmp_path, target)
    shuffled = batch_of(record_bytes(1) + record_bytes(0) + record_bytes(2), 3, codec=source)
    with pytest.raises(InvalidRecordError, match="offset delta 1"):
        partition.append_as_leader(memoryview(shuffled), 1, 0)
    assert partition.log.log_end_offset == 0


def test_corrupt_compressed_payload_refused_before_recompressing(tmp_path: Path, impl: str) -> None:
    partition = _partition(tmp_path, "gzip")
    buf = batch_of(b"\x00" * 40, 3)
    buf[22] |= int(Compression.LZ4)
    buf[17:21] = _crc_of(memoryview(buf), 21, len(buf)).to_bytes(4, "big")
    with pytest.raises(CorruptRecordError):
        partition.append_as_leader(memoryview(buf), 1, 0)
    assert partition.log.log_end_offset == 0


def test_recompression_still_works_and_keeps_keys(tmp_path: Path, impl: str) -> None:
    partition = _partition(tmp_path, "zstd", LogConfig(cleanup_policy="compact"))
    batch = build_batch([RecordInput(b"a", b"1"), RecordInput(b"b", b"2")])
    info = partition.append_as_leader(memoryview(bytearray(batch)), 1, 0)
    assert (info.first_offset, info.last_offset) == (0, 1)
    (stored,) = [b for data in read_all(partition.log) for b in iter_batches(data)]
    assert stored.compression == Compression.ZSTD
    assert [r.key for r in decode_records(stored)] == [b"a", b"b"]
    keyless = build_batch([RecordInput(None, b"1")])
    with pytest.raises(RecordValidationError) as raised:
        partition.append_as_leader(memoryview(bytearray(keyless)), 1, 0)
    assert raised.value.record_errors == [(0, "Compacted topic cannot accept message without key in topic partition t-0.")]
