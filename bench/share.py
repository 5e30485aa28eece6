"""What share groups cost (issue 12's performance goal), on one Moldau broker in one run.

1,000,000 records of 100 B in one partition (confluent-kafka producer, ``linger.ms=5``,
Kafka's default ``batch.size`` of 16 KiB). Then, in alternating order over ``--runs``:

- ``classic``: one confluent-kafka Consumer reads the partition from the start;
- ``share``: three confluent-kafka ShareConsumers (implicit acknowledgement, each in
  its own process) drain it in one share group (``share.auto.offset.reset=earliest``);
  every record is acquired, locked, acknowledged and its state persisted.

Reported: records/s from the first record to the last one received, and the broker's
CPU seconds per million records. Goal: share >= 0.5x classic. The ShareConsumers run
under an interpreter with confluent-kafka >= 2.16 (``.venv-share``, see scripts/test,
or ``--share-python``). The machine is shared: compare only within one run.
Run: ``.venv/bin/python bench/share.py [--records 1000000] [--runs 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transactions import start_broker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc; no psutil in the test venv)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

SHARE_WORKER = r"""
import json, sys, time
from confluent_kafka import ShareConsumer
bootstrap, group, topic, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 3})
c.subscribe([topic])
n, first, last, idle_since = 0, None, None, time.monotonic()
while True:
    got = [m for m in c.poll(0.2) if m.error() is None]
    now = time.time()
    if got:
        n += len(got)
        first = first or now
        last = now
        idle_since = time.monotonic()
    elif n and time.monotonic() - idle_since > 3:
        break
    elif time.monotonic() - idle_since > 120:
        break
c.close()
print(json.dumps({"n": n, "first": first, "last": last}), flush=True)
"""


def produce(bootstrap: str, topic: str, count: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 16384})
    value = b"x" * 100
    for i in range(count):
        while True:
            try:
                p.produce(topic, value=value, partition=0)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def classic(bootstrap: str, topic: str, count: int, run: int) -> tuple[float, float]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"classic-{run}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800})
    c.subscribe([topic])
    n, first, last = 0, None, None
    deadline = time.monotonic() + 300
    while n < count and time.monotonic() < deadline:
        for m in c.consume(10000, 0.5):
            if m.error() is None:
                n += 1
        if n:
            first = first or time.time()
            last = time.time()
    c.close()
    assert n >= count, f"classic consumer read {n} of {count}"
    return n, (last or 0) - (first or 0)


def share(python: str, bootstrap: str, topic: str, count: int, run: int) -> tuple[int, float]:
    group = f"share-{run}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)
    futures = admin.incremental_alter_configs([ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])])
    for f in futures.values():
        f.result(15)
    procs = [
        subprocess.Popen([python, "-c", SHARE_WORKER, bootstrap, group, topic, str(count)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        results.append(json.loads(out.strip().splitlines()[-1]))
    n = sum(r["n"] for r in results)
    first = min(r["first"] for r in results if r["first"])
    last = max(r["last"] for r in results if r["last"])
    print(f"    share consumers: {[r['n'] for r in results]}", flush=True)
    return n, last - first


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--share-python", default=str(ROOT / ".venv-share" / "bin" / "python"))
    args = ap.parse_args()
    proc, bootstrap, data = start_broker()
    try:
        topic = "bench-share"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(20)
        t = time.perf_counter()
        produce(bootstrap, topic, args.records)
        print(f"produced {args.records} records of 100 B in {time.perf_counter() - t:.1f} s", flush=True)
        rates: dict[str, list[float]] = {"classic": [], "share": []}
        cpus: dict[str, list[float]] = {"classic": [], "share": []}
        for run in range(args.runs):
            order = ["classic", "share"] if run % 2 == 0 else ["share", "classic"]
            for kind in order:
                before = cpu_seconds(proc.pid)
                if kind == "classic":
                    n, seconds = classic(bootstrap, topic, args.records, run)
                else:
                    n, seconds = share(args.share_python, bootstrap, topic, args.records, run)
                cpu = cpu_seconds(proc.pid) - before
                rates[kind].append(n / seconds)
                cpus[kind].append(cpu / n * 1e6)
                print(f"  run {run} {kind}: {n} records in {seconds:.1f} s = {n / seconds:,.0f} rec/s, "
                      f"broker CPU {cpu:.1f} s ({cpu / n * 1e6:.1f} s per million)", flush=True)
        c, s = statistics.median(rates["classic"]), statistics.median(rates["share"])
        print(f"classic {c:,.0f} rec/s, broker CPU {statistics.median(cpus['classic']):.1f} s/M")
        print(f"share   {s:,.0f} rec/s, broker CPU {statistics.median(cpus['share']):.1f} s/M")
        print(f"share / classic = {s / c:.2f}x (goal >= 0.5x)")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
