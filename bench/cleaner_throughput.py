"""Log cleaner throughput and peak memory on a compacted log of ``--gib`` GiB (default 1).

Builds a log of ``--keys`` keys overwritten round robin (1 KiB values, 100 records a
batch, 128 MiB segments) directly with the storage layer, then runs one cleaner pass
and reports MB/s of log cleaned and the process's peak RSS before and during the
pass. Run: ``.venv/bin/python bench/cleaner_throughput.py [--gib 1] [--keys 100000]``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from moldau.records import RecordInput, build_batch
from moldau.storage import LogConfig, LogManager
from moldau.storage.cleaner import CleanerConfig, LogCleaner


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-size", type=int, default=1000)
    parser.add_argument("--dedupe-mb", type=int, default=128)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=args.dir, prefix="moldau-cleaner-bench-"))
    try:
        config = LogConfig(
            cleanup_policy="compact", segment_bytes=128 << 20, min_cleanable_dirty_ratio=0.0
        )
        manager = LogManager(root, config)
        manager.load()
        log = manager.create_log("bench", 0, config)
        target = int(args.gib * (1 << 30))
        value = b"v" * args.value_size
        i = 0
        t0 = time.monotonic()
        while log.size_in_bytes < target:
            batch = build_batch(
                [
                    RecordInput(b"key-%08d" % ((i + j) % args.keys), value, timestamp=1)
                    for j in range(100)
                ]
            )
            log.append_as_leader(bytearray(batch), leader_epoch=0, now_ms=1)
            i += 100
        log.roll()
        log.flush()
        size = log.size_in_bytes
        print(
            f"built {size / 1e6:.0f} MB, {i} records, {len(log.segments)} segments "
            f"in {time.monotonic() - t0:.1f} s; peak RSS so far {peak_rss_mb():.0f} MB"
        )
        cleaner = LogCleaner(
            manager, CleanerConfig(dedupe_buffer_size=args.dedupe_mb << 20), time_ms=lambda: 2
        )
        before_rss = peak_rss_mb()
        t0 = time.monotonic()
        passes = cleaner.clean_until_idle()
        elapsed = time.monotonic() - t0
        stats = cleaner.last_stats[("bench", 0)]
        print(
            f"cleaned in {passes} pass(es), {elapsed:.1f} s: {size / 1e6 / elapsed:.1f} MB/s "
            f"of log; last pass read {stats.bytes_read / 1e6:.0f} MB, wrote "
            f"{stats.bytes_written / 1e6:.0f} MB, map {stats.map_utilization:.1%} full; "
            f"log now {log.size_in_bytes / 1e6:.0f} MB in {len(log.segments)} segments"
        )
        print(
            f"peak RSS: {before_rss:.0f} MB before cleaning, {peak_rss_mb():.0f} MB after "
            f"(offset map {args.dedupe_mb} MiB)"
        )
        manager.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
