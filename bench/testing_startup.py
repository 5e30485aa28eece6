"""How fast ``moldau.testing`` gives a test a broker (issue 13's goals: one broker in
under 0.3 s; 100 tests with a fresh broker each in under 30 s).

    .venv/bin/python bench/testing_startup.py [--runs 50] [--process 3]

Prints the first start in this process (it also imports Moldau), then the median, 95th
percentile and maximum of ``Broker().__enter__()`` (start) and ``close()`` for warm
thread brokers, and of broker processes (``process=True``) when asked. The 100-test
run is ``MOLDAU_TEST_HUNDRED=1 pytest tests/testing/test_hundred_brokers.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time


def _stats(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"


def _time_starts(label: str, runs: int, **options: object) -> None:
    """Start and close ``runs`` brokers made with ``options``; print both timings."""
    from moldau.testing import Broker  # imported by main() first, timed there

    starts, closes = [], []
    for _ in range(runs):
        t = time.perf_counter()
        broker = Broker(**options).__enter__()
        starts.append(time.perf_counter() - t)
        t = time.perf_counter()
        broker.close()
        closes.append(time.perf_counter() - t)
    print(f"{label} start ({runs}): {_stats(starts)}")
    print(f"{label} close ({runs}): {_stats(closes)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--process", type=int, default=0, help="also start this many broker processes")
    args = parser.parse_args()
    began = time.perf_counter()
    from moldau.testing import Broker

    with Broker():
        first = time.perf_counter() - began
    print(f"first thread broker (with the import of Moldau): {first * 1000:.0f} ms")
    _time_starts("thread broker", args.runs)
    if args.process:
        _time_starts("broker process", args.process, process=True)


if __name__ == "__main__":
    main()
