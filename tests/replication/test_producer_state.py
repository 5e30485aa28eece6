"""Idempotent producer bookkeeping: duplicates, gaps and fenced epochs."""

from __future__ import annotations

import pytest

from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.replication.producer_state import ProducerStateManager


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
