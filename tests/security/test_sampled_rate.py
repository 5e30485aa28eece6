"""Kafka's sampled rate: window size, expiry of idle samples, the throttle formula."""

from __future__ import annotations

import pytest

from moldau.security.sampled_rate import SampledRate


def test_a_young_sensor_counts_at_least_samples_minus_one_windows() -> None:
    rate = SampledRate(samples=11, window=1.0)
    rate.record(100, 0.0)
    assert rate.window_size(0.0) == pytest.approx(10.0)
    assert rate.rate(0.3) == pytest.approx(100 / 10.3)
    rate.record(100, 9.5)  # a new sample; the oldest began at 0: 9.5 s, 9 whole windows
    assert rate.window_size(9.5) == pytest.approx(10.5)
    assert rate.rate(11.0) == pytest.approx(100 / 10.5)  # the first sample is 11 windows idle: gone


def test_samples_rotate_through_a_ring_of_samples_plus_one() -> None:
    rate = SampledRate(samples=3, window=1.0)
    for t in range(10):
        rate.record(10, float(t))
    # four slots hold t=6..9, and t=6's is three windows old: reset, so 7..9 count
    assert rate.window_size(9.0) == pytest.approx(2.0)
    assert rate.rate(9.0) == pytest.approx(30 / 2.0)


def test_idle_samples_expire_and_a_negative_value_takes_one_back() -> None:
    rate = SampledRate(samples=2, window=1.0)
    rate.record(5, 0.0)
    rate.record(-5, 0.0)
    assert rate.rate(0.0) == 0
    rate.record(5, 0.0)
    assert rate.rate(1.9) == pytest.approx(5 / 1.9)
    assert rate.rate(2.0) == 0  # nothing recorded for samples * window: forgotten


def test_throttle_is_the_time_to_bring_the_rate_back_to_the_quota() -> None:
    rate = SampledRate(samples=2, window=1.0)  # connection-rate style: 2 per second
    assert rate.record_and_throttle(1, 2, 0.0) == 0
    assert rate.record_and_throttle(1, 2, 0.0) == 0
    assert rate.record_and_throttle(1, 2, 0.0) == pytest.approx(0.5)  # (3 - 2) / 2 * 1 s
    rate.record(10, 0.0)
    assert rate.throttle(2, 0.0) == pytest.approx(5.5)
    assert rate.throttle(2, 0.0, cap=1.0) == 1.0
