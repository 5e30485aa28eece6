"""Stream-processing frameworks in their exactly-once modes against a real broker.

quixstreams (``processing_guarantee="exactly-once"``) with a stateful count per key, so
that its RocksDB store is backed by a changelog topic written in the same transactions
as the output and the consumed offsets: killed with kill -9 mid-run and restarted with
an empty state folder (so its counts must come back from the changelog, as far as the
last commit), the output read committed holds for every key the counts 1..n exactly
once, each input's result once.

faust-streaming (``processing_guarantee="exactly_once"``) with a table (in memory,
backed by its changelog topic) runs to completion with correct counts; it sends
TxnOffsetCommit v0, with no member id or generation, which Kafka accepts from any group
for backward compatibility (as Moldau now does). It is not killed: see faust_worker.py.

Cost: about 20-25 s each (two application starts, each paying the framework's topic
set-up and a rebalance).
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

from .kafka_helpers import admin_client, create_topic, wait_until, watermarks

QUIX_WORKER = Path(__file__).with_name("quix_worker.py")
FAUST_WORKER = Path(__file__).with_name("faust_worker.py")
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
    # Java's (and aiokafka's) partitioner, so that a key's output partition is its input
    # partition: faust sends an output through the transactional producer of the
    # partition it goes to, and commits an input's offset through its partition's
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                  "partitioner": "murmur2_random"})
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


def _run(worker: Path, state_dir: Path, *args: object) -> subprocess.Popen:
    """A worker process, its output in STATE_DIR.log (attached to a failure's message)."""
    state_dir.mkdir()
    with open(f"{state_dir}.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, str(worker), *map(str, args)], stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = f"{state_dir}.log"  # type: ignore[attr-defined]
    return proc


def _run_quix(bootstrap: str, source: str, sink: str, group: str, state_dir: Path,
              idle: float, delay_ms: int) -> subprocess.Popen:
    return _run(QUIX_WORKER, state_dir, bootstrap, source, sink, group, state_dir, idle, delay_ms)


def _run_faust(bootstrap: str, source: str, sink: str, app_id: str, state_dir: Path,
               delay_ms: int) -> subprocess.Popen:
    return _run(FAUST_WORKER, state_dir, bootstrap, source, sink, app_id, state_dir, delay_ms)


def _output_of(proc: subprocess.Popen) -> str:
    return Path(proc.log_path).read_text(errors="replace")[-3000:]  # type: ignore[attr-defined]


def _start_and_kill(bootstrap: str, sink: str, start) -> None:
    """Run ``start("state1", slow=True)`` and kill it with kill -9 once it wrote output."""
    first = start("state1", True)
    try:
        wait_until(lambda: first.poll() is not None or sum(
            watermarks(bootstrap, sink, p)[1] for p in range(2)) >= 300,
            timeout=60, interval=0.2, message="the first incarnation writing output")
        assert first.poll() is None, _output_of(first)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(10)


def _kill_restart_scenario(bootstrap: str, topic: str, start, kill: bool = True) -> None:
    """Feed 1200 inputs; (if ``kill``) run ``start(name, slow)`` slowed down and kill it
    with kill -9 once some output exists; run it (again, with a new state folder) until
    every input's result is committed, stop it with SIGTERM; check the output read
    committed."""
    source, sink = f"{topic}-in", f"{topic}-out"
    create_topic(bootstrap, source, 2)
    create_topic(bootstrap, sink, 2)
    inputs = 1200
    expected = _feed(bootstrap, source, inputs)

    if kill:
        _start_and_kill(bootstrap, sink, start)
    before = len(read_committed(bootstrap, sink, 2))
    assert before < inputs or not kill, "killed too late to test a restart"

    # a new state folder, so the counts come from the changelog
    second = start("state2", False)
    try:
        try:
            wait_until(lambda: second.poll() is not None or len(read_committed(bootstrap, sink, 2)) >= inputs,
                       timeout=60, interval=1.0, message="every input's result committed")
        except AssertionError as exc:
            second.send_signal(signal.SIGUSR1)
            time.sleep(1)
            second.kill()
            second.wait(10)
            raise AssertionError(f"{exc}; the application said: {_output_of(second)}") from None
        assert second.poll() is None, _output_of(second)
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(10)

    out = read_committed(bootstrap, sink, 2)
    values = Counter(v for _, v in out)
    duplicates = sum(n - 1 for n in values.values() if n > 1)
    print(f"{inputs} inputs, {before} outputs committed before kill -9, {len(out)} after the restart, "
          f"{duplicates} duplicates")
    for key, vals in expected.items():
        got = [v for k, v in out if k == key]
        assert got == [b"%s|%d" % (v, i + 1) for i, v in enumerate(vals)], f"key {key}"
    assert len(out) == inputs and duplicates == 0


def _changelogs(bootstrap: str) -> list[str]:
    admin = admin_client(bootstrap)
    return [t for t in admin.list_topics(timeout=10).topics if "changelog" in t]


def test_quixstreams_exactly_once_with_state_survives_kill9(broker, topic, tmp_path):
    pytest.importorskip("quixstreams")
    group = f"g-{topic}"

    def start(name: str, slow: bool) -> subprocess.Popen:
        return _run_quix(broker.bootstrap, f"{topic}-in", f"{topic}-out", group, tmp_path / name, 0, 4 if slow else 0)

    _kill_restart_scenario(broker.bootstrap, topic, start)
    assert _changelogs(broker.bootstrap), "no changelog topic: the state was not backed by Kafka"


def test_faust_exactly_once_with_table_runs_to_completion(broker, topic, tmp_path):
    """Not killed: faust-streaming 0.15's outputs to a topic it does not consume are not
    in its transactions (see faust_worker.py), so a kill -9 duplicates them, on Kafka too."""
    pytest.importorskip("faust")
    app_id = f"app-{topic}"

    def start(name: str, slow: bool) -> subprocess.Popen:
        return _run_faust(broker.bootstrap, f"{topic}-in", f"{topic}-out", app_id, tmp_path / name, 4 if slow else 0)

    _kill_restart_scenario(broker.bootstrap, topic, start, kill=False)
    assert _changelogs(broker.bootstrap), "no changelog topic: the table was not backed by Kafka"
