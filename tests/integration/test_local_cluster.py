"""``moldau cluster``: one command starts etcd and N brokers, and stops them in order.

What is proven here, with the real command and real clients: the command prints a
bootstrap address at which librdkafka finds all three brokers and a controller; a
topic with replication factor 3 takes acks=all writes that a consumer group reads
back; SIGTERM to the command (what Ctrl-C does in a terminal) stops every broker --
each with a controlled shutdown, exit code 0 -- and then etcd, and no process it
started is left; started again on the same data directory, the cluster still has the
topic and its records.

Cost: about 15 s (two starts of etcd and three brokers).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic

from moldau.metastore.etcd_server import find_etcd

from .broker_process import broker_command
from .kafka_helpers import (
    admin_client,
    assert_delivered,
    confluent_consume,
    confluent_produce,
    consumer_conf,
    sample_records,
    unique_topic,
    wait_until,
)

pytestmark = pytest.mark.skipif(find_etcd() is None, reason="no etcd binary (scripts/test installs one)")


class _Command:
    """``moldau cluster`` as a child process, its output in a file."""

    def __init__(self, data_dir: Path, out: Path) -> None:
        self.out = out
        with open(out, "ab") as sink:
            self.proc = subprocess.Popen(
                [*broker_command(), "cluster", "--brokers", "3", "--port", "0", "--data-dir", str(data_dir)],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def bootstrap(self) -> str:
        def ready() -> str | None:
            assert self.proc.poll() is None, f"moldau cluster exited:\n{self.text()}"
            found = re.search(r"^bootstrap: (\S+)$", self.text(), re.M)
            return found.group(1) if found else None

        return wait_until(ready, timeout=60, interval=0.1, message="the bootstrap address")

    def pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"\(pid (\d+),", self.text())]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=90)

    def kill(self) -> None:
        """Teardown after a failure: the command, and whatever it started, by PID."""
        for pid in [self.proc.pid, *self.pids()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def _group_read(bootstrap: str, topic: str, count: int) -> list[bytes | None]:
    """``count`` values read by a consumer group (subscribe, commit), in order."""
    consumer = Consumer(consumer_conf(bootstrap, **{"group.id": unique_topic("local-group"),
                                                "enable.auto.offset.store": True}))
    values: list[bytes | None] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.append(msg.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_one_command_runs_and_stops_a_three_broker_cluster(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    command = _Command(data_dir, tmp_path / "out-1.txt")
    topic = unique_topic("local")
    try:
        bootstrap = command.bootstrap()
        assert len(bootstrap.split(",")) == 3
        admin = admin_client(bootstrap)
        meta = wait_until(lambda: (m := admin.list_topics(timeout=10)) and len(m.brokers) == 3 and m, timeout=20,
                          message="three brokers in Metadata")
        assert meta.controller_id in (1, 2, 3)
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=3,
                                      config={"min.insync.replicas": "2"})], request_timeout=15)[topic].result(20)
        records = sample_records(100, seed=9)
        assert_delivered(confluent_produce(bootstrap, topic, records, acks="all"))
        assert _group_read(bootstrap, topic, 100) == [r.value for r in records]
        pids = command.pids()
        assert len(pids) == 4  # etcd and three brokers
        assert command.stop() == 0
    except BaseException:
        command.kill()
        raise
    text = command.text()
    assert [int(n) for n in re.findall(r"broker (\d) stopped \(exit code 0\)", text)] == [1, 2, 3], text
    assert text.rstrip().endswith("etcd stopped"), text
    assert not [p for p in pids if _alive(p)]
    for i in (1, 2, 3):
        log = (data_dir / "logs" / f"broker-{i}.log").read_text()
        assert "shutting down" in log and "stopped cleanly" in log

    # the same data directory again: the topic and its records are still there
    again = _Command(data_dir, tmp_path / "out-2.txt")
    try:
        bootstrap = again.bootstrap()
        got = confluent_consume(bootstrap, topic, 100, **{"group.id": unique_topic("local-again")})
        assert [g.value for g in got] == [r.value for r in records]
        began = time.monotonic()
        assert again.stop() == 0
        print(f"moldau cluster: stopped three brokers and etcd in {(time.monotonic() - began) * 1000:.0f} ms")
    except BaseException:
        again.kill()
        raise
