"""Several log directories (Kafka's ``log.dirs``, JBOD): partitions spread over them,
DescribeLogDirs lists each, AlterReplicaLogDirs moves a replica between them, and all
of it survives a restart (kafka-python's admin client, confluent-kafka producing and
consuming). Two brokers; about 20 s.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.errors import LogDirNotFoundError, NoError

from .kafka_helpers import (
    Rec,
    assert_delivered,
    assert_records,
    confluent_consume,
    confluent_produce,
    create_topic,
    sample_records,
    unique_topic,
)


def _dirs(admin: KafkaAdminClient, topic: str) -> dict[str, set[int]]:
    (answer,) = admin.describe_log_dirs()
    out: dict[str, set[int]] = {}
    for d in answer["log_dirs"]:
        assert d["error_code"] == 0 and d["total_bytes"] > 0
        out[d["log_dir"]] = {p["partition_index"] for t in d["topics"] if t["name"] == topic for p in t["partitions"]}
    return out


def test_partitions_spread_over_log_dirs_and_move_between_them(make_broker, tmp_path):
    first, second = (tmp_path / "disk-a").resolve(), (tmp_path / "disk-b").resolve()
    broker = make_broker(**{"log.dirs": f"{first},{second}"})
    bootstrap = broker.bootstrap
    topic = unique_topic("jbod")
    create_topic(bootstrap, topic, partitions=4)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        placed = _dirs(admin, topic)
        assert set(placed) == {str(first), str(second)}
        assert sorted(len(p) for p in placed.values()) == [2, 2]  # the emptier directory first
        for path, partitions in placed.items():
            assert {int(d.name.rsplit("-", 1)[1]) for d in (tmp_path / path).glob(f"{topic}-*")} == partitions
        records = sample_records(50, seed=3)
        confluent_produce(bootstrap, topic, records[:30], partition=0)
        source = next(path for path, p in placed.items() if 0 in p)
        target = str(second) if source == str(first) else str(first)
        assert admin.alter_replica_log_dirs({(topic, 0, 0): "/not/a/log/dir"}) == {(topic, 0, 0): LogDirNotFoundError}
        moved = admin.alter_replica_log_dirs({(topic, 0, 0): target})
        assert list(moved.values()) == [NoError]
        assert 0 in _dirs(admin, topic)[target] and 0 not in _dirs(admin, topic)[source]
        assert (tmp_path / target / f"{topic}-0").is_dir() and not (tmp_path / source / f"{topic}-0").exists()
        confluent_produce(bootstrap, topic, records[30:], partition=0)  # the moved log takes writes
        assert_records(confluent_consume(bootstrap, topic, 50, partition=0), records)
    finally:
        admin.close()
    broker.restart()
    assert_records(confluent_consume(bootstrap, topic, 50, partition=0), records)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        assert 0 in _dirs(admin, topic)[target]
    finally:
        admin.close()


def _other_filesystem(path: Path) -> Path | None:
    """A fresh directory on a filesystem other than ``path``'s (tmpfs), or None."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == path.stat().st_dev:
        return None
    return Path(tempfile.mkdtemp(prefix="moldau-it-jbod-", dir=shm))


def test_a_replica_moves_to_another_filesystem_while_written(make_broker, tmp_path):
    """Separate disks: the log is copied while producers keep writing, then reopened on
    the other filesystem; every record is there, before and after a restart."""
    other = _other_filesystem(tmp_path)
    if other is None:
        pytest.skip("no second filesystem (/dev/shm) to move to")
    try:
        first = (tmp_path / "disk-a").resolve()
        broker = make_broker(**{"log.dirs": f"{first},{other}"})
        bootstrap = broker.bootstrap
        topic = unique_topic("jbod-copy")
        create_topic(bootstrap, topic, partitions=2, config={"segment.bytes": "16384"})  # several segments
        records = [Rec(b"k%d" % i, b"%d:" % i + b"x" * 200) for i in range(400)]
        assert_delivered(confluent_produce(bootstrap, topic, records[:300], partition=0, chunks=30))
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
        try:
            source = next(path for path, p in _dirs(admin, topic).items() if 0 in p)
            target = str(other) if source == str(first) else str(first)
            written: list = []
            writer = threading.Thread(target=lambda: written.extend(
                confluent_produce(bootstrap, topic, records[300:], partition=0, chunks=100)))
            writer.start()
            moved = admin.alter_replica_log_dirs({(topic, 0, 0): target})
            writer.join(30)
            assert_delivered(written, first_offset=300)
            assert list(moved.values()) == [NoError]
            assert 0 in _dirs(admin, topic)[target]
            assert not (Path(source) / f"{topic}-0").exists()
        finally:
            admin.close()
        assert [g.value for g in confluent_consume(bootstrap, topic, 400, partition=0)] == [r.value for r in records]
        assert len(list((Path(target) / f"{topic}-0").glob("*.log"))) > 1
        broker.restart()
        assert [g.value for g in confluent_consume(bootstrap, topic, 400, partition=0)] == [r.value for r in records]
        broker.stop()
    finally:
        shutil.rmtree(other, ignore_errors=True)
