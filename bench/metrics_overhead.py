"""What the metrics cost produce (issue 14's goal: at most 3% lower), in one run.

Two fresh Moldau brokers side by side: **on** (the default ``moldau.metrics.enable=true``,
the HTTP listener on, ``/metrics`` scraped every second during the workload -- 15 times
Prometheus' usual rate) and **off** (``moldau.metrics.enable=false``, no HTTP listener).
Each run does both workloads on both brokers, in alternating order:

- ``produce 1KiB p6 acks=1``: confluent-kafka as bench/workloads.py's produce
  (``linger.ms=5``, ``batch.size`` 1 MiB), for ``--seconds``;
- ``small requests 100B acks=1``: ``batch.num.messages=1``, ``linger.ms=0``: one record
  per Produce request, so per-request costs (the request timing, the per-topic
  counters) weigh most.

Reported: msgs/s and the broker's CPU seconds per million messages (from /proc: user +
system of the broker process), medians over ``--runs``, and on/off ratios. The machine
is shared: compare only within one run; CPU per message is the steadier number.
Run: ``.venv/bin/python bench/metrics_overhead.py [--seconds 8] [--runs 3]``;
``--scrape-topics 1000`` instead times ``/metrics`` on a broker with that many topics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import payloads  # noqa: E402

PARTITIONS = 6
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moldau:
    def __init__(self, metrics: bool) -> None:
        self.metrics = metrics
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.data = Path(tempfile.mkdtemp(prefix="moldau-bench-metrics-"))
        cmd = [sys.executable, "-m", "moldau", "serve", "--data-dir", str(self.data), "--listen", self.bootstrap]
        self.http = None
        if metrics:
            self.http = f"http://127.0.0.1:{_free_port()}"
            cmd += ["--http", self.http.removeprefix("http://")]
        else:
            cmd += ["--set", "moldau.metrics.enable=false"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("moldau did not start")

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.data, ignore_errors=True)


def _scraper(url: str, stop: threading.Event, scrapes: list[int]) -> None:
    while not stop.wait(1.0):
        with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
            answer.read()
        scrapes[0] += 1


def produce(broker: Moldau, topic: str, seconds: float, small: bool) -> tuple[float, float]:
    """(msgs/s, broker CPU s per million messages)."""
    conf: dict[str, object] = {"bootstrap.servers": broker.bootstrap, "acks": 1, "enable.idempotence": False}
    if small:
        conf.update({"linger.ms": 0, "batch.num.messages": 1, "max.in.flight.requests.per.connection": 200})
        values = payloads(100)
    else:
        conf.update({"linger.ms": 5, "batch.size": 1 << 20})
        values = payloads(1024)
    p = Producer(conf)
    stop = threading.Event()
    scrapes = [0]
    scraper = None
    if broker.http is not None:
        scraper = threading.Thread(target=_scraper, args=(broker.http, stop, scrapes), daemon=True)
        scraper.start()
    cpu_before = broker.cpu()
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    n = len(values)
    while time.perf_counter() < deadline:
        for _ in range(1000):
            try:
                p.produce(topic, values[count % n], partition=count % PARTITIONS if small else -1)
            except BufferError:
                p.poll(0.005)
                continue
            count += 1
        p.poll(0)
    p.flush(60)
    elapsed = time.perf_counter() - start
    cpu = broker.cpu() - cpu_before
    stop.set()
    if scraper is not None:
        scraper.join(10)
        assert scrapes[0] >= seconds // 2, "the scraper did not keep up"
    return count / elapsed, cpu / count * 1e6


def _probe_while(broker: Moldau, work: object) -> float:
    """The worst ApiVersions (v0) round trip on the Kafka listener while ``work()`` runs."""
    frame = (2 + 2 + 4 + 2 + 5).to_bytes(4, "big") + bytes([0, 18, 0, 0, 0, 0, 0, 1, 0, 5]) + b"probe"
    stop = threading.Event()
    worst = [0.0]

    def probe() -> None:
        with socket.create_connection(("127.0.0.1", broker.port)) as s:
            while not stop.is_set():
                started = time.perf_counter()
                s.sendall(frame)
                size = int.from_bytes(s.recv(4, socket.MSG_WAITALL), "big")
                s.recv(size, socket.MSG_WAITALL)
                worst[0] = max(worst[0], time.perf_counter() - started)
                time.sleep(0.002)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        work()  # type: ignore[operator]
    finally:
        stop.set()
        thread.join(10)
    return worst[0]


def scrape_cost(topics: int) -> None:
    """Create ``topics`` topics of one partition with a committed offset each, then time
    ``/metrics`` (the scrape runs on the broker's event loop, so this is also how long it
    holds the loop)."""
    broker = Moldau(True)
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        names = [f"scrape-{i:05d}" for i in range(topics)]
        for start in range(0, topics, 100):
            batch = [NewTopic(n, 1, 1) for n in names[start:start + 100]]
            for future in admin.create_topics(batch, request_timeout=60).values():
                future.result(timeout=60)
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        for name in names:
            p.produce(name, b"x" * 100)
        p.flush(60)
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "scrape-group"})
        c.commit(offsets=[TopicPartition(n, 0, 1) for n in names], asynchronous=False)
        c.close()
        quiet = _probe_while(broker, lambda: time.sleep(3))
        times: list[float] = []
        timings: list[str] = []
        size = [0]

        def scrape_ten() -> None:
            for _ in range(10):
                started = time.perf_counter()
                with urllib.request.urlopen(broker.http + "/metrics", timeout=30) as answer:
                    size[0] = len(answer.read())
                    timings.append(answer.headers.get("Server-Timing", ""))
                times.append(time.perf_counter() - started)

        busy = _probe_while(broker, scrape_ten)
        print(f"/metrics with {topics} topics (+50 __consumer_offsets partitions), one group on all: "
              f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms, "
              f"{size[0] / 1e6:.1f} MB")
        print("broker's Server-Timing (ms):", "; ".join(timings[:5]))
        print(f"ApiVersions round trip meanwhile (every 2 ms): max {busy * 1000:.1f} ms; "
              f"without scrapes: max {quiet * 1000:.1f} ms")
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scrape-topics", type=int, default=0,
                        help="only time /metrics on a broker with this many topics")
    args = parser.parse_args()
    if args.scrape_topics:
        scrape_cost(args.scrape_topics)
        return
    names = ("produce 1KiB p6 acks=1", "small requests 100B acks=1")
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run in range(args.runs):
        brokers = {"on": Moldau(True), "off": Moldau(False)}
        try:
            for name in names:
                small = name.startswith("small")
                order = ["on", "off"] if run % 2 == 0 else ["off", "on"]
                for which in order:
                    broker = brokers[which]
                    topic = f"bench-{which}-{small}-{run}"
                    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
                    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=20)
                    results.setdefault((name, which), []).append(produce(broker, topic, args.seconds, small))
                    rate, cpu = results[(name, which)][-1]
                    print(f"run {run + 1} {name} metrics {which}: {rate:,.0f} msgs/s, {cpu:.1f} broker CPU s/M msgs",
                          file=sys.stderr)
        finally:
            for broker in brokers.values():
                broker.stop()
    print(f"{'workload':30} {'msgs/s on':>11} {'off':>11} {'on/off':>7} | {'CPU s/M on':>10} {'off':>7} {'on/off':>7}")
    for name in names:
        on, off = results[(name, "on")], results[(name, "off")]
        rate_on, rate_off = statistics.median(r for r, _ in on), statistics.median(r for r, _ in off)
        cpu_on, cpu_off = statistics.median(c for _, c in on), statistics.median(c for _, c in off)
        print(f"{name:30} {rate_on:11,.0f} {rate_off:11,.0f} {rate_on / rate_off:7.3f} | "
              f"{cpu_on:10.2f} {cpu_off:7.2f} {cpu_on / cpu_off:7.3f}")
    print("goal: msgs/s on/off >= 0.97 (broker CPU per message on/off <= 1.03)")


if __name__ == "__main__":
    main()
