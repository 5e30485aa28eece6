"""Log.append_as_leader walks every record: refused batches leave the log untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.records.builders import batch_of, record_bytes, records

from moldau.records import InvalidRecordError, RecordInput, RecordValidationError, build_batch
from moldau.storage import LogConfig

from .helpers import make_batch, open_log, read_all


def test_refused_batches_append_nothing(tmp_path: Path, impl: str) -> None:
    log = open_log(tmp_path / "t-0")
    log.append_as_leader(make_batch(2), leader_epoch=0, now_ms=0)
    stored = read_all(log)
    size = log.size_in_bytes
    bad = [
        batch_of(record_bytes(1) + record_bytes(0), 2),  # shuffled offset deltas
        batch_of(records(2) + b"\x00", 2),  # trailing bytes
        batch_of(records(3, value=b"x" * 30), 4),  # one record fewer than declared
    ]
    for buf in bad:
        with pytest.raises(InvalidRecordError, match="in topic partition t-0"):
            log.append_as_leader(buf, leader_epoch=0, now_ms=0)
    assert log.log_end_offset == 2
    assert log.size_in_bytes == size
    assert read_all(log) == stored
    assert log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0).first_offset == 2


def test_keyless_records_refused_on_a_compacted_log(tmp_path: Path, impl: str) -> None:
    log = open_log(tmp_path / "c-0", LogConfig(cleanup_policy="compact"))
    batch = build_batch([RecordInput(b"k", b"v"), RecordInput(None, b"v"), RecordInput(b"k", b"v")])
    with pytest.raises(RecordValidationError) as raised:
        log.append_as_leader(bytearray(batch), leader_epoch=0, now_ms=0)
    assert [i for i, _ in raised.value.record_errors] == [1]
    assert log.log_end_offset == 0


def test_wrong_max_timestamp_is_corrected_before_indexing(tmp_path: Path, impl: str) -> None:
    log = open_log(tmp_path / "t-0")
    payload = record_bytes(0, timestamp_delta=0) + record_bytes(1, timestamp_delta=500)
    info = log.append_as_leader(
        batch_of(payload, 2, base_timestamp=10_000, max_timestamp=9_000), leader_epoch=0, now_ms=0
    )
    assert info.max_timestamp == 10_500
    # with the producer's maxTimestamp (9,000) the time index would find nothing here
    found = log.offset_for_timestamp(10_400)
    assert found is not None and found[0] == 1
    assert log.offset_for_timestamp(10_501) is None
