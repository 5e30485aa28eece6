"""Exactly once through kill -9: a consume-transform-produce worker (txn_worker.py,
confluent-kafka's transactions with send_offsets_to_transaction) is killed with kill -9
at random moments and restarted, again and again; in the end the output topic, read
committed, holds each input's result exactly once. And the broker itself killed with
kill -9 three times under a stream of transactions: after each restart every
transaction is visible wholly or not at all, and every acknowledged commit is visible.

Cost: about 25 s each (worker restarts, each paying librdkafka's start and
InitProducerId, which waits for the previous incarnation's abort; broker restarts).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import Producer

from .kafka_helpers import create_topic, read_to_end, wait_until, watermarks

KILL_CYCLES = int(os.environ.get("MOLDAU_TXN_KILL_CYCLES", "8"))
WORKER = Path(__file__).with_name("txn_worker.py")


def _start(bootstrap: str, source: str, sink: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), bootstrap, source, sink, f"g-{source}", f"t-{source}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _kill9(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _feed(bootstrap: str, topic: str, stop, fed: list[int]) -> None:
    """Inputs at about 500 a second until ``stop``: the worker is always busy when killed."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    n = 0
    while not stop.is_set():
        for _ in range(25):
            p.produce(source_of(topic), value=b"%06d" % n, partition=0)
            n += 1
        p.poll(0)
        time.sleep(0.05)
    assert p.flush(30) == 0
    fed.append(n)


def source_of(topic: str) -> str:
    return f"{topic}-in"


def test_consume_transform_produce_killed_again_and_again_yields_each_result_once(make_broker, topic):
    import threading

    broker = make_broker()
    source, sink = source_of(topic), f"{topic}-out"
    create_topic(broker.bootstrap, source, 1)
    create_topic(broker.bootstrap, sink, 1)
    stop = threading.Event()
    fed: list[int] = []
    feeder = threading.Thread(target=_feed, args=(broker.bootstrap, topic, stop, fed))
    feeder.start()
    rng = random.Random(1234)
    kills = 0
    worker = _start(broker.bootstrap, source, sink)
    try:
        for _ in range(KILL_CYCLES):
            time.sleep(rng.uniform(1.0, 3.0))
            _kill9(worker)
            kills += 1
            worker = _start(broker.bootstrap, source, sink)
        stop.set()
        feeder.join(60)
        inputs = fed[0]
        # the last incarnation runs to the end of the input
        wait_until(lambda: len(read_to_end(broker.bootstrap, sink, must_reach_end=False)) >= inputs, timeout=90, interval=1.0,
                   message="every input processed")
    finally:
        stop.set()
        _kill9(worker)
    out = read_to_end(broker.bootstrap, sink, must_reach_end=False)
    counts = Counter(out)
    expected = {b"%06d-out" % i for i in range(inputs)}
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    missing = len(expected - set(counts))
    print(f"{kills} kills; {inputs} inputs, {len(out)} outputs read committed, {duplicates} duplicates, "
          f"{missing} missing; sink end offset {watermarks(broker.bootstrap, sink)[1]} (aborted writes and markers)")
    assert set(counts) == expected and duplicates == 0 and missing == 0


def _transactions_until_stopped(bootstrap: str, topic: str, txn_id: str, first: int, stop, acknowledged: list[int]) -> None:
    """Transactions of five records each (values b"n-i") over two partitions until the
    broker goes away; the numbers of those whose commit was acknowledged."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 5000,
                  "socket.timeout.ms": 3000, "message.timeout.ms": 5000, "linger.ms": 1})
    try:
        p.init_transactions(20)
        n = first
        while not stop.is_set():
            p.begin_transaction()
            for i in range(5):
                p.produce(topic, value=b"%d-%d" % (n, i), partition=i % 2)
            p.commit_transaction(10)
            acknowledged.append(n)
            n += 1
    except Exception:  # the broker was killed under us
        pass


def test_a_broker_killed_mid_transactions_shows_each_wholly_or_not_at_all(make_broker, topic):
    import threading

    broker = make_broker(**{"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500})
    create_topic(broker.bootstrap, topic, 2)
    rng = random.Random(99)
    acknowledged: list[int] = []
    for cycle in range(3):
        stop = threading.Event()
        worker = threading.Thread(target=_transactions_until_stopped, args=(
            broker.bootstrap, topic, "killed-under", cycle * 100_000, stop, acknowledged))
        worker.start()
        time.sleep(rng.uniform(1.0, 2.5))
        broker.kill9()
        stop.set()
        worker.join(60)
        broker.start()
    # a new incarnation finishes or aborts whatever the last crash left open
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "killed-under"})
    p.init_transactions(60)
    by_txn = Counter(v.split(b"-")[0] for v in read_to_end(broker.bootstrap, topic, 2))
    partial = {n: c for n, c in by_txn.items() if c != 5}
    lost = [n for n in acknowledged if by_txn.get(b"%d" % n) != 5]
    print(f"{len(acknowledged)} commits acknowledged over 3 broker kills; {len(by_txn)} transactions visible, "
          f"{len(partial)} partial, {len(lost)} acknowledged but not visible")
    assert not partial and not lost
