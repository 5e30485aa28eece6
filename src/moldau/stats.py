"""Plain counters and histograms the broker updates as it works, read at scrape time.

Theory of operation: the hot paths (every request, every produced or fetched
partition) only add to ints in dicts and lists here -- no lock, no label lookup, no
prometheus-client object per update -- because they all run on the broker's one event
loop thread. ``moldau.http.metrics`` turns them into Prometheus metric families when
``/metrics`` is scraped, so the cost of the exposition is paid by the scraper, once per
scrape, not by the clients. Measured on this machine: a ``Counter.labels(...).inc()``
costs ~0.5 us, a dict lookup and an int add ~0.05 us (bench/README.md).

:class:`Histogram` is also used from worker threads (log flushes) with its own lock.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict

#: request latency buckets, in seconds (Prometheus' defaults reach down to 5 ms only;
#: a produce answered on the loop takes tens of microseconds)
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Counts per bucket (not cumulative: ``counts[i]`` is observations <= ``bounds[i]``
    and > ``bounds[i-1]``; the last one is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (upper bound as text, observations at or below it)."""
        out = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)

    def copy(self) -> Histogram:
        twin = Histogram(self.bounds)
        twin.counts = list(self.counts)
        twin.total = self.total
        return twin


class LockedHistogram(Histogram):
    """A :class:`Histogram` observed from several threads."""

    __slots__ = ("_lock",)

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        super().__init__(bounds)
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            Histogram.observe(self, value)


class BrokerStats:
    """What the broker counts (see the module docstring). ``enabled`` False (config
    ``moldau.metrics.enable=false``) makes the handlers skip every update."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        #: topic -> [messages in, bytes in] (leader appends from producers)
        self.topic_in: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        #: topic -> [fetch bytes out to consumers, to follower replicas]
        self.topic_out: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        #: api key -> request latency (time until the answer is ready)
        self.requests: dict[int, Histogram] = {}
        #: (api key, error code) -> count of errors in answers (partition-level included)
        self.errors: defaultdict[tuple[int, int], int] = defaultdict(int)
        #: event loop lag: how late a timer fires
        self.loop_lag = Histogram((0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.last_loop_lag = 0.0

    def request_done(self, api_key: int, seconds: float) -> None:
        histogram = self.requests.get(api_key)
        if histogram is None:
            histogram = self.requests[api_key] = Histogram()
        histogram.observe(seconds)

    def error(self, api_key: int, code: int) -> None:
        self.errors[(api_key, code)] += 1


#: log flush times (fsyncs of segments), all logs of the process together
FLUSH_TIMES = LockedHistogram()
