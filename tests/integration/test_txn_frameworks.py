"""Stream-processing frameworks in their exactly-once modes against a real broker.

quixstreams (``processing_guarantee="exactly-once"``) with a stateful count per key, so
that its RocksDB store is backed by a changelog topic written in the same transactions
as the output and the consumed offsets: killed with kill -9 mid-run and restarted with
an empty state folder (so its counts must come back from the changelog, as far as the
last commit), the output read committed holds for every key the counts 1..n exactly
once, each input's result once.

Cost: about 15-25 s (two application starts, each paying quixstreams' topic set-up and
a rebalance).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from .kafka_helpers import create_topic, wait_until, watermarks

QUIX_WORKER = Path(__file__).with_name("quix_worker.py")
KEYS = [f"k{i}" for i in range(6)]


def read_committed(bootstrap: str, topic: str, partitions: int, timeout: float = 30) -> list[tuple[str, bytes]]:
    """Every (key, value) of ``topic`` a read_committed consumer sees, up to each LSO."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                  "isolation.level": "read_committed", "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[tuple[str, bytes]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(at_end) < partitions and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                at_end.add(m.partition())
                continue
            out.append((m.key().decode(), m.value()))
    finally:
        c.close()
    assert len(at_end) == partitions, "did not reach the end of every partition"
    return out


def _feed(bootstrap: str, topic: str, count: int) -> dict[str, list[bytes]]:
    """``count`` records round-robin over KEYS; returns each key's values in order."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    by_key: dict[str, list[bytes]] = {k: [] for k in KEYS}
    for i in range(count):
        key = KEYS[i % len(KEYS)]
        value = b"%06d" % i
        p.produce(topic, key=key, value=value)
        by_key[key].append(value)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    return by_key


def _run_quix(bootstrap: str, source: str, sink: str, group: str, state_dir: Path,
              idle: float, delay_ms: int) -> subprocess.Popen:
    """The application, its output in STATE_DIR.log (attached to a failure's message)."""
    state_dir.mkdir()
    with open(f"{state_dir}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(QUIX_WORKER), bootstrap, source, sink, group, str(state_dir), str(idle),
             str(delay_ms)],
            stdout=log, stderr=subprocess.STDOUT,
        )
    proc.log_path = f"{state_dir}.log"  # type: ignore[attr-defined]
    return proc


def _output_of(proc: subprocess.Popen) -> str:
    return Path(proc.log_path).read_text(errors="replace")[-3000:]  # type: ignore[attr-defined]


def test_quixstreams_exactly_once_with_state_survives_kill9(broker, topic, tmp_path):
    pytest.importorskip("quixstreams")
    source, sink, group = f"{topic}-in", f"{topic}-out", f"g-{topic}"
    create_topic(broker.bootstrap, source, 2)
    create_topic(broker.bootstrap, sink, 2)
    inputs = 1200
    expected = _feed(broker.bootstrap, source, inputs)

    # first incarnation: slowed down, killed once some transactions are committed
    first = _run_quix(broker.bootstrap, source, sink, group, tmp_path / "state1", 0, 4)
    try:
        wait_until(lambda: first.poll() is not None or sum(
            watermarks(broker.bootstrap, sink, p)[1] for p in range(2)) >= 300,
            timeout=60, interval=0.2, message="the first incarnation writing output")
        assert first.poll() is None, _output_of(first)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(10)
    before = len(read_committed(broker.bootstrap, sink, 2))
    assert before < inputs, "killed too late to test a restart"

    # second incarnation: a new state folder, so the counts come from the changelog
    # it runs until every input has its committed result, then is stopped with SIGTERM
    second = _run_quix(broker.bootstrap, source, sink, group, tmp_path / "state2", 0, 0)
    try:
        try:
            wait_until(lambda: second.poll() is not None or len(read_committed(broker.bootstrap, sink, 2)) >= inputs,
                       timeout=60, interval=1.0, message="every input's result committed")
        except AssertionError as exc:
            second.send_signal(signal.SIGUSR1)
            time.sleep(1)
            second.kill()
            second.wait(10)
            raise AssertionError(f"{exc}; the application said: {_output_of(second)}") from None
        assert second.poll() is None, _output_of(second)
        second.send_signal(signal.SIGTERM)
        rc = second.wait(30)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(10)
    assert rc == 0, _output_of(second)

    out = read_committed(broker.bootstrap, sink, 2)
    values = Counter(v for _, v in out)
    duplicates = sum(n - 1 for n in values.values() if n > 1)
    print(f"quixstreams: {inputs} inputs, {before} outputs committed before kill -9, {len(out)} after the "
          f"restart, {duplicates} duplicates")
    for key, vals in expected.items():
        got = [v for k, v in out if k == key]
        assert got == [b"%s|%d" % (v, i + 1) for i, v in enumerate(vals)], f"key {key}"
    assert len(out) == inputs and duplicates == 0
    changelogs = [t for t in Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"}).list_topics(
        timeout=10).topics if t.startswith("changelog__")]
    assert changelogs, "no changelog topic: the state was not backed by Kafka"
