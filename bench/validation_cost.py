"""What record validation costs on the produce path, measured in-process.

For 100 B and 1 KiB records (the bench's JSON-like values, null keys, as librdkafka
batches them with ``batch.size`` 1 MiB: 1,000 and 200 records a batch), uncompressed
and lz4, it reports

- ``validate``: :func:`moldau.records.validation.validate_records` alone on one
  batch (for lz4 this includes decompressing it), in µs per record and MB/s of
  batch bytes, for each implementation of the per-record walk (C, Python);
- ``append``: ``Log.append_as_leader`` of fresh copies of the batch into a log in a
  temporary directory (page cache, no fsync, as the broker runs), in ms per MB of
  batches, with validation off (the walk replaced by a no-op) and with each
  implementation; the difference is what validation adds to the storage path.

Each figure is the best of ``--repeat`` rounds (the machine is shared). Run:
``.venv/bin/python bench/validation_cost.py [--mb 64] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import payloads  # noqa: E402

import moldau.storage.log as log_module  # noqa: E402
from moldau.records import (  # noqa: E402
    Compression,
    RecordInput,
    build_batch,
    validation,  # noqa: E402
)
from moldau.storage import FileCache, Log, LogConfig  # noqa: E402

CASES = [(100, 1000), (1024, 200)]
CODECS = [Compression.NONE, Compression.LZ4]


def make_batch(size: int, count: int, codec: Compression) -> bytes:
    values = payloads(size)
    records = [
        RecordInput(key=None, value=values[i % len(values)], timestamp=1_700_000_000_000 + i // 10)
        for i in range(count)
    ]
    return build_batch(records, compression=codec)


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def time_validate(batch: bytes, iterations: int) -> float:
    buf = bytearray(batch)
    start = time.perf_counter()
    for _ in range(iterations):
        validation.validate_records(buf)
    return (time.perf_counter() - start) / iterations


def time_append(batch: bytes, total_bytes: int) -> float:
    """Seconds per batch appended, copies included (the broker's buffer is the request)."""
    root = Path(tempfile.mkdtemp(prefix="moldau-validation-bench-"))
    try:
        log = Log.open(
            root / "t-0",
            LogConfig(segment_bytes=1 << 30),
            file_cache=FileCache(16),
            recovery_point=0,
            log_start_offset=0,
            clean_shutdown=True,
            now_ms=0,
        )
        n = max(1, total_bytes // len(batch))
        copies = [bytearray(batch) for _ in range(n)]
        start = time.perf_counter()
        for copy in copies:
            log.append_as_leader(copy, leader_epoch=0, now_ms=0)
        elapsed = time.perf_counter() - start
        log.close()
        return elapsed / n
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _no_validation(*_args: object, **_kwargs: object) -> validation.RecordsSummary:
    return validation.RecordsSummary(record_count=0, max_timestamps_corrected=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=64, help="MB appended per append measurement")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    impls = ", ".join(sorted(validation.IMPLEMENTATIONS))
    print(f"implementations: {impls}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'records':>14} {'codec':>5} | {'validate µs/rec':>16} {'MB/s':>13} | "
        f"{'append ms/MB':>26} {'+validation ms/MB':>20}"
    )
    print(
        f"{'':>14} {'':>5} | {'C':>7} {'Python':>8} {'C':>6} {'Python':>6} | "
        f"{'none':>8} {'C':>8} {'Python':>8} {'C':>9} {'Python':>10}"
    )
    original_validate = log_module.validate_records
    for size, count in CASES:
        for codec in CODECS:
            batch = make_batch(size, count, codec)
            mb = len(batch) / 1e6
            per_rec: dict[str, float] = {}
            mbps: dict[str, float] = {}
            append: dict[str, float] = {}
            for impl in ("c", "python"):
                if impl not in validation.IMPLEMENTATIONS:
                    continue
                validation.scan = validation.IMPLEMENTATIONS[impl]
                iterations = 200 if impl == "c" else 10
                seconds = best(lambda b=batch, it=iterations: time_validate(b, it), args.repeat)
                per_rec[impl] = seconds / count * 1e6
                mbps[impl] = mb / seconds
                append[impl] = best(lambda b=batch: time_append(b, args.mb << 20), args.repeat) / mb * 1e3
            log_module.validate_records = _no_validation
            try:
                append["none"] = (
                    best(lambda b=batch: time_append(b, args.mb << 20), args.repeat) / mb * 1e3
                )
            finally:
                log_module.validate_records = original_validate

            def fmt(d: dict[str, float], k: str, spec: str) -> str:
                return format(d[k], spec) if k in d else "-"

            extra = {k: append[k] - append["none"] for k in ("c", "python") if k in append}
            print(
                f"{count:>5} x {size:>4} B {codec.name.lower():>5} | "
                f"{fmt(per_rec, 'c', '7.3f')} {fmt(per_rec, 'python', '8.3f')} "
                f"{fmt(mbps, 'c', '6.0f')} {fmt(mbps, 'python', '6.0f')} | "
                f"{append['none']:8.3f} {fmt(append, 'c', '8.3f')} "
                f"{fmt(append, 'python', '8.3f')} "
                f"{fmt(extra, 'c', '9.3f')} {fmt(extra, 'python', '10.3f')}"
            )
    validation.scan = validation.IMPLEMENTATIONS[validation.IMPLEMENTATION]


if __name__ == "__main__":
    main()
