"""ThrottledLog: a bounded number of lines per interval, and a count of the rest."""

from __future__ import annotations

import logging

import pytest

from moldau.log_throttle import ThrottledLog


def test_burst_then_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    throttle = ThrottledLog(logging.getLogger("t.throttle"), "refusals", burst=3, interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t.throttle"):
        for i in range(50):
            throttle("refused %d", i)
        assert [r.getMessage() for r in caplog.records][:2] == ["refused 0", "refused 1"]
        assert len(caplog.records) == 3
        assert "further refusals are counted" in caplog.records[2].getMessage()
        assert throttle.suppressed == 47
        now[0] += 9.9
        throttle("refused late")
        assert len(caplog.records) == 3  # same interval
        now[0] += 0.2
        throttle("refused next")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[3] == "48 more refusals in the last 10 s were not logged"
    assert messages[4] == "refused next"
    assert throttle.total_suppressed == 48
