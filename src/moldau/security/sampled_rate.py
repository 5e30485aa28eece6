"""A rate measured as Kafka's quota sensors measure it: ``quota.window.num`` samples of
``quota.window.size.seconds``, and the throttle time Kafka derives from it.

Theory of operation (Kafka's ``SampledStat``/``Rate``/``QuotaUtils``, re-expressed):

- Samples live in a ring of ``samples + 1`` slots (Kafka keeps one extra "overlapping"
  slot). A value is added to the current sample; a sample is complete once it is one
  window old, and the next value then starts a new sample in the next slot (reusing
  the oldest one).
- Before measuring, samples whose last value is ``samples * window`` old or more are
  reset (value 0, started now): an idle client's history is forgotten.
- The rate is the sum of the samples divided by the time since the oldest sample
  began, counted as at least ``samples - 1`` whole windows (Kafka's guard against a
  young sensor measuring a huge rate). So an idle client may burst about
  ``(samples - 1) * window * quota`` before it is throttled, and a burst is averaged
  over the whole window.
- Over the quota, the throttle time is ``(rate - quota) / quota * window_size``: how
  long the client must stay silent for the measured rate to fall back to the quota.

Cost: recording is O(1). The slots are scanned only when a sample starts (once per
window) or when one may have expired (a precomputed time), never per value.
Single-threaded (the broker's event loop).
"""

from __future__ import annotations

__all__ = ["SampledRate"]


class SampledRate:
    """Kafka's sampled ``Rate`` with an upper-bound quota; times in seconds (monotonic)."""

    __slots__ = (
        "samples", "window", "_starts", "_lasts", "_values", "_current",
        "_total", "_oldest", "_next_expiry", "last_record",
    )

    def __init__(self, samples: int = 11, window: float = 1.0) -> None:
        self.samples = max(1, samples)
        self.window = window
        self._starts: list[float] = []
        self._lasts: list[float] = []
        self._values: list[float] = []
        self._current = 0
        self._total = 0.0
        self._oldest = 0.0
        self._next_expiry = float("inf")
        #: when a value was last recorded (for dropping idle sensors)
        self.last_record = float("-inf")

    # recording ---------------------------------------------------------------------

    def record(self, value: float, now: float) -> None:
        """Add ``value`` at ``now`` (a negative value takes back one recorded before)."""
        if not self._starts:
            self._new_slot(now)
        elif now - self._starts[self._current] >= self.window:
            self._advance(now)
        self._values[self._current] += value
        self._total += value
        self._lasts[self._current] = now
        self.last_record = now

    def _new_slot(self, now: float) -> None:
        self._starts.append(now)
        self._lasts.append(now)
        self._values.append(0.0)
        self._current = len(self._starts) - 1
        self._rescan()

    def _advance(self, now: float) -> None:
        current = (self._current + 1) % (self.samples + 1)
        if current >= len(self._starts):
            self._new_slot(now)
            return
        self._current = current
        self._starts[current] = self._lasts[current] = now
        self._values[current] = 0.0
        self._rescan()

    def _rescan(self) -> None:
        """Recompute the total, the oldest start and the next expiry (O(samples), once
        per window at most)."""
        self._total = sum(self._values)
        self._oldest = min(self._starts)
        self._next_expiry = min(self._lasts) + self.samples * self.window

    def _purge(self, now: float) -> None:
        """Reset the samples nothing was recorded in for ``samples`` windows."""
        if now < self._next_expiry:
            return
        expire = self.samples * self.window
        for i, last in enumerate(self._lasts):
            if now - last >= expire:
                self._starts[i] = self._lasts[i] = now
                self._values[i] = 0.0
        if self._starts:
            self._rescan()
        else:
            self._next_expiry = float("inf")

    # measuring ---------------------------------------------------------------------

    def window_size(self, now: float) -> float:
        """Kafka's ``Rate.windowSize``: the time since the oldest sample began, at least
        ``samples - 1`` whole windows (plus what passed of the current one)."""
        self._purge(now)
        elapsed = now - (self._oldest if self._starts else now)
        full = int(elapsed // self.window)
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window
        return max(elapsed, 0.001)

    def rate(self, now: float) -> float:
        """The measured rate per second."""
        size = self.window_size(now)
        return self._total / size

    def throttle(self, quota: float, now: float, cap: float | None = None) -> float:
        """Seconds to throttle for the rate to come back to ``quota`` (0: within it);
        at most ``cap`` when given (Kafka caps request and connection quotas at one
        window, not byte rates)."""
        size = self.window_size(now)
        rate = self._total / size
        if rate <= quota:
            return 0.0
        if quota <= 0:  # a zero quota: Kafka's infinite throttle, bounded by the cap
            return float("inf") if cap is None else cap
        delay = (rate - quota) / quota * size
        return delay if cap is None else min(delay, cap)

    def record_and_throttle(self, value: float, quota: float, now: float, cap: float | None = None) -> float:
        """Record, then check the quota: Kafka's ``Sensor.record`` with quota checks."""
        self.record(value, now)
        return self.throttle(quota, now, cap)
