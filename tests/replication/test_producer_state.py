"""Idempotent producer bookkeeping: duplicates, gaps and fenced epochs."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import RecordInput, build_batch
from moldau.replication.partition import Partition
from moldau.replication.producer_state import ProducerStateManager, rebuild_from_log
from moldau.storage.config import LogConfig
from moldau.storage.file_cache import FileCache
from moldau.storage.log import Log


def test_unknown_producer_is_accepted_at_any_sequence() -> None:
    state = ProducerStateManager()
    assert state.check(7, 0, 42, 3) is None


def test_retry_of_a_recent_batch_is_a_duplicate() -> None:
    state = ProducerStateManager()
    state.update(7, 0, 0, 5, 100, 104, -1)
    state.update(7, 0, 5, 5, 105, 109, -1)
    duplicate = state.check(7, 0, 0, 5)
    assert duplicate is not None and duplicate.first_offset == 100


def test_gap_is_out_of_order() -> None:
    state = ProducerStateManager()
    state.update(7, 0, 0, 5, 100, 104, -1)
    with pytest.raises(KafkaError) as info:
        state.check(7, 0, 6, 1)
    assert info.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert state.check(7, 0, 5, 1) is None


def test_old_epoch_is_fenced_and_new_epoch_restarts() -> None:
    state = ProducerStateManager()
    state.update(7, 3, 0, 1, 0, 0, -1)
    with pytest.raises(KafkaError) as info:
        state.check(7, 2, 1, 1)
    assert info.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    assert state.check(7, 4, 0, 1) is None


def test_sequence_wraps_at_int32() -> None:
    state = ProducerStateManager()
    state.update(7, 0, 2**31 - 2, 2, 0, 1, -1)
    assert state.check(7, 0, 0, 1) is None


def _partition(directory: Path) -> Partition:
    log = Log.open(
        directory,
        LogConfig(),
        file_cache=FileCache(16),
        recovery_point=0,
        log_start_offset=0,
        clean_shutdown=True,
    )
    return Partition("t", 0, uuid.uuid4(), log, broker_id=0, leader=0, leader_epoch=0, replicas=[0], isr=[0])


def _batch(sequence: int, count: int = 2, producer_id: int = 42) -> memoryview:
    records = [RecordInput(b"k%d" % i, b"v%d" % i) for i in range(count)]
    data = build_batch(records, producer_id=producer_id, producer_epoch=0, base_sequence=sequence)
    return memoryview(bytearray(data))


def test_a_retry_after_a_restart_is_still_a_duplicate(tmp_path: Path) -> None:
    first = _partition(tmp_path / "t-0")
    for sequence in (0, 2, 4):
        first.append_as_leader(_batch(sequence), 1, 1_000)
    assert first.log.log_end_offset == 6
    first.log.close(flush=True)

    again = _partition(tmp_path / "t-0")  # a new broker process over the same files
    retried = again.append_as_leader(_batch(4), 1, 2_000)
    assert retried.first_offset == 4
    assert again.log.log_end_offset == 6  # not appended twice
    with pytest.raises(KafkaError) as info:
        again.append_as_leader(_batch(9), 1, 2_000)
    assert info.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert again.append_as_leader(_batch(6), 1, 2_000).first_offset == 6


def test_rebuild_reads_only_the_tail(tmp_path: Path) -> None:
    first = _partition(tmp_path / "t-0")
    first.append_as_leader(_batch(0, producer_id=7), 1, 1_000)
    for sequence in range(0, 400, 2):
        first.append_as_leader(_batch(sequence, producer_id=8), 1, 1_000)
    first.log.close(flush=True)
    state = ProducerStateManager()
    rebuild_from_log(state, _partition(tmp_path / "t-0").log, scan_bytes=2_000)
    assert 8 in state.producers and 7 not in state.producers
