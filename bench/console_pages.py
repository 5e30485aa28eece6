"""Console page times with many topics (issue 14's goal: a page under 200 ms from the broker).

One fresh Moldau broker with the HTTP listener, ``--topics`` topics (``--partitions``
each, created in batches with confluent-kafka's admin client), ``--records`` JSON
records in the first topic and a consumer group that committed on it. Then every
console page is fetched ``--repeat`` times over keep-alive HTTP; reported per page:
the median and max of the broker's own build time (``X-Moldau-Render-Ms``, from the
request's arrival at the page handler to the finished HTML) and of the whole HTTP round
trip seen by the client, and the page's size.
Run: ``.venv/bin/python bench/console_pages.py [--topics 1000] [--partitions 1]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    port, http_port = _free_port(), _free_port()
    data = Path(tempfile.mkdtemp(prefix="moldau-bench-console-"))
    bootstrap = f"127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moldau", "serve", "--data-dir", str(data), "--listen", bootstrap,
                             "--http", f"127.0.0.1:{http_port}", "--log-level", "warning"])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.request("GET", "/readyz")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        names = [f"topic-{i:04d}" for i in range(args.topics)]
        started = time.monotonic()
        for i in range(0, len(names), 100):
            futures = admin.create_topics([NewTopic(n, args.partitions, 1) for n in names[i:i + 100]],
                                          request_timeout=120)
            for f in futures.values():
                f.result(timeout=120)
        print(f"created {args.topics} topics x {args.partitions} partitions in {time.monotonic() - started:.1f} s")
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for i in range(args.records):
            producer.produce(names[0], key=f"key-{i}", value=json.dumps({"id": i, "text": "x" * 200}), partition=0)
        producer.flush(30)
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-group", "enable.auto.commit": False})
        consumer.commit(offsets=[TopicPartition(names[0], 0, args.records // 2)], asynchronous=False)
        consumer.close()
        pages = {
            "overview": "/console/",
            "topics (page 1)": "/console/topics",
            "topics (page 20)": "/console/topics?page=20",
            "topics (filter)": "/console/topics?q=topic-09",
            "topic": f"/console/topics/{names[0]}",
            "messages (20, newest)": f"/console/topics/{names[0]}/messages?partition=0",
            "messages (100, hex)": f"/console/topics/{names[0]}/messages?partition=0&offset=0&limit=100&format=hex",
            "search (whole topic)": f"/console/topics/{names[0]}/messages?partition=0&offset=0&q=no-such-text",
            "groups": "/console/groups",
            "group": "/console/groups/bench-group",
            "broker configs": "/console/broker",
        }
        conn.close()  # idle past the listener's timeout while topics were created
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        print(f"{'page':24} {'build median':>12} {'build max':>10} {'HTTP median':>12} {'HTTP max':>9} {'size':>9}")
        for name, path in pages.items():
            built, total, size = [], [], 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                conn.request("GET", path)
                answer = conn.getresponse()
                body = answer.read()
                total.append((time.perf_counter() - t0) * 1000)
                assert answer.status == 200, (path, answer.status, body[:200])
                built.append(float(answer.headers["X-Moldau-Render-Ms"]))
                size = len(body)
            print(f"{name:24} {statistics.median(built):10.1f}ms {max(built):8.1f}ms "
                  f"{statistics.median(total):10.1f}ms {max(total):7.1f}ms {size / 1024:7.1f}KiB")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
