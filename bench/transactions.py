"""What transactions cost (issue 10's performance goals), on one Moldau broker in one run.

- ``produce``: 1 KiB records to 3 partitions for ``--seconds``, with confluent-kafka's
  idempotent producer, against the same producer with a ``transactional.id`` that
  commits every 100 ms (each commit is a flush, AddPartitionsToTxn when a partition
  joins, EndTxn, and the coordinator's markers). Goal: transactional >= 0.8x.
- ``consume``: the transactional topic read from the start with
  ``isolation.level=read_committed`` against ``read_uncommitted``. Goal: >= 0.9x. (Only
  meaningful once the log side's read_committed Fetch is in: before, both read alike.)

Producer settings as bench/workloads.py's (``linger.ms=5``, ``batch.size`` 1 MiB). Runs
alternate their order; the figures are medians over ``--runs``. The machine is shared:
compare only within one run. Run: ``.venv/bin/python bench/transactions.py [--seconds 10] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import payloads  # noqa: E402

PARTITIONS = 3
COMMIT_EVERY_S = 0.1


def start_broker() -> tuple[subprocess.Popen, str, Path]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="moldau-bench-txn-"))
    bootstrap = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moldau", "serve", "--data-dir", str(data), "--listen", bootstrap],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, bootstrap, data
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("moldau did not start")


def create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=20)


def produce(bootstrap: str, topic: str, seconds: float, transactional: bool) -> float:
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1 << 20, "enable.idempotence": True}
    if transactional:
        conf["transactional.id"] = f"bench-{topic}"
    p = Producer(conf)
    values = payloads(1024)
    if transactional:
        p.init_transactions(30)
        p.begin_transaction()
    count = 0
    start = last_commit = time.perf_counter()
    deadline = start + seconds
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        try:
            p.produce(topic, value=values[count % len(values)], partition=count % PARTITIONS)
        except BufferError:
            p.poll(0.005)
            continue
        count += 1
        if count % 64 == 0:
            p.poll(0)
        if transactional and now - last_commit >= COMMIT_EVERY_S:
            p.commit_transaction(30)
            p.begin_transaction()
            last_commit = time.perf_counter()
    if transactional:
        p.commit_transaction(30)
    else:
        p.flush(30)
    return count / (time.perf_counter() - start)


def consume(bootstrap: str, topic: str, isolation: str) -> float:
    c = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-{time.monotonic_ns()}", "enable.auto.commit": False,
        "isolation.level": isolation, "enable.partition.eof": True, "fetch.queue.backoff.ms": 10,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    eof: set[int] = set()
    count = 0
    first = None
    try:
        while len(eof) < PARTITIONS:
            for m in c.consume(1000, timeout=1.0):
                if m.error():
                    eof.add(m.partition())
                    continue
                if first is None:
                    first = time.perf_counter()
                count += 1
    finally:
        c.close()
    return count / (time.perf_counter() - (first or time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"idempotent": [], "transactional": [], "read_uncommitted": [],
                                       "read_committed": []}
    for run in range(args.runs):
        proc, bootstrap, data = start_broker()
        try:
            plain, txn = f"plain-{run}", f"txn-{run}"
            create(bootstrap, plain)
            create(bootstrap, txn)
            order = [(plain, False), (txn, True)]
            for topic, transactional in order if run % 2 == 0 else order[::-1]:
                results["transactional" if transactional else "idempotent"].append(
                    produce(bootstrap, topic, args.seconds, transactional))
            for isolation in ("read_uncommitted", "read_committed") if run % 2 == 0 else (
                    "read_committed", "read_uncommitted"):
                results[isolation].append(consume(bootstrap, txn, isolation))
        finally:
            proc.terminate()
            proc.wait(15)
            shutil.rmtree(data, ignore_errors=True)
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items()), file=sys.stderr)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"1 KiB produce, msgs/s: idempotent {med['idempotent']:,.0f}, transactional (commit every "
          f"{COMMIT_EVERY_S * 1000:.0f} ms) {med['transactional']:,.0f}: "
          f"{med['transactional'] / med['idempotent']:.2f}x (goal >= 0.8x)")
    print(f"consume, msgs/s: read_uncommitted {med['read_uncommitted']:,.0f}, read_committed "
          f"{med['read_committed']:,.0f}: {med['read_committed'] / med['read_uncommitted']:.2f}x (goal >= 0.9x)")


if __name__ == "__main__":
    main()
