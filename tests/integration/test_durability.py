"""Nothing acknowledged is lost: SIGTERM and kill -9 restarts, torn segment tails,
broken indexes. The data directory is Kafka's layout: <topic>-<partition>/<20-digit
base offset>.log with .index and .timeindex beside it."""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
import threading
import time
from pathlib import Path

import google_crc32c
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions, ResourceType

from .broker_process import Broker, BrokerError
from .kafka_helpers import (
    Rec,
    admin_client,
    assert_delivered,
    assert_records,
    confluent_consume,
    confluent_produce,
    consumer_conf,
    create_topic,
    now_ms,
    producer_conf,
    sample_records,
    wait_for_topic,
    watermarks,
)

pytestmark = pytest.mark.timeout(120)

BATCH_HEADER = 61  # record batch v2 header, including base offset and length


# ----------------------------------------------------------- on-disk layout
def partition_dir(data_dir: Path, topic: str, partition: int = 0) -> Path:
    name = f"{topic}-{partition}"
    direct = data_dir / name
    if direct.is_dir():
        return direct
    found = [p for p in data_dir.rglob(name) if p.is_dir()]
    assert len(found) == 1, f"partition dir {name} under {data_dir}: {found}"
    return found[0]


def segment_logs(pdir: Path) -> list[Path]:
    logs = sorted(pdir.glob("*.log"))
    assert logs, f"no .log files in {pdir}: {sorted(os.listdir(pdir))}"
    for log in logs:
        assert re.fullmatch(r"\d{20}\.log", log.name), log.name
    return logs


def active_segment(pdir: Path) -> Path:
    return segment_logs(pdir)[-1]


def walk_batches(path: Path) -> list[tuple[int, int, int]]:
    """(base offset, last offset, size) for every batch; asserts the file ends exactly
    after the last batch and that every batch has magic 2 and a valid CRC-32C."""
    data = path.read_bytes()
    pos, out = 0, []
    while pos < len(data):
        assert len(data) - pos >= BATCH_HEADER, f"{path.name}: {len(data) - pos} stray bytes at {pos}"
        base, length = struct.unpack_from(">qi", data, pos)
        size = 12 + length
        assert length >= BATCH_HEADER - 12 and pos + size <= len(data), \
            f"{path.name}: bad batch length {length} at byte {pos} (file {len(data)} bytes)"
        magic = data[pos + 16]
        assert magic == 2, f"{path.name}: magic {magic} at byte {pos}"
        (crc,) = struct.unpack_from(">I", data, pos + 17)
        assert crc == google_crc32c.value(data[pos + 21:pos + size]), \
            f"{path.name}: CRC mismatch in batch at byte {pos} (base offset {base})"
        (last_delta,) = struct.unpack_from(">i", data, pos + 23)
        out.append((base, base + last_delta, size))
        pos += size
    return out


def assert_log_consistent(pdir: Path, end_offset: int) -> None:
    """Segments named by their first batch's base offset, offsets contiguous to end_offset."""
    expected = None
    for log in segment_logs(pdir):
        batches = walk_batches(log)
        if not batches:
            continue
        assert int(log.name[:20]) <= batches[0][0], (log.name, batches[0])
        for base, last, _ in batches:
            if expected is not None:
                assert base == expected, f"{log.name}: batch at {base}, expected {expected}"
            expected = last + 1
    assert expected == end_offset, f"log ends at {expected}, high watermark {end_offset}"


# ----------------------------------------------------------------- helpers
def produce_acked(bs: str, topic: str, n: int, seed: int, partition: int = 0,
                  first_offset: int = 0, codec: str = "none") -> list[Rec]:
    recs = sample_records(n, seed=seed)
    assert_delivered(confluent_produce(bs, topic, recs, partition=partition, chunks=4,
                                       acks="all", **{"compression.type": codec}),
                     first_offset=first_offset)
    return recs


def check_all_there(bs: str, topic: str, expected: list[Rec], partition: int = 0) -> None:
    got = confluent_consume(bs, topic, len(expected), partition=partition, timeout=30,
                            extra_wait=0.5)
    assert_records(got, expected)
    assert watermarks(bs, topic, partition) == (0, len(expected))


# ------------------------------------------------------------------- tests
@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_restart_keeps_acknowledged_records(broker, topic, how):
    bs = broker.bootstrap
    create_topic(bs, topic, partitions=2)
    recs = {0: produce_acked(bs, topic, 120, seed=40, partition=0, codec="lz4"),
            1: produce_acked(bs, topic, 80, seed=41, partition=1)}
    if how == "sigterm":
        broker.stop()
    else:
        broker.kill9()
    broker.start()
    wait_for_topic(bs, topic, partitions=2, timeout=15)
    for p, expected in recs.items():
        check_all_there(bs, topic, expected, partition=p)
    # new records continue after the old ones
    more = produce_acked(bs, topic, 10, seed=42, partition=0, first_offset=120)
    assert_records(confluent_consume(bs, topic, 10, start=120), more, first_offset=120)
    for p, n in ((0, 130), (1, 80)):
        assert_log_consistent(partition_dir(broker.data_dir, topic, p), n)


def test_sigterm_exits_promptly(broker, topic):
    create_topic(broker.bootstrap, topic)
    produce_acked(broker.bootstrap, topic, 10, seed=43)
    started = time.monotonic()
    code = broker.stop(timeout=10)
    assert time.monotonic() - started < 10
    # 0 (handled, clean exit) or 143 (128 + SIGTERM, as the JVM reports it);
    # -15 means Python's default handler killed it without a clean shutdown
    assert code in (0, 143), f"exit code {code} after SIGTERM"


def test_kill9_during_production_loses_nothing_acked(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic)
    acked: dict[int, bytes] = {}
    failed = 0
    stop = threading.Event()
    lock = threading.Lock()

    def on_delivery(err, msg):
        nonlocal failed
        with lock:
            if err is None:
                acked[msg.offset()] = msg.value()
            else:
                failed += 1

    def run():
        p = Producer(producer_conf(bs, acks="all", **{"linger.ms": 2,
                                                      "message.timeout.ms": 3000,
                                                      "compression.type": "gzip"}))
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, b"payload-%08d-" % i + b"z" * (i % 300), key=b"%d" % i,
                          partition=0, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001 if i % 20 else 0.01)
        p.flush(10)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 2000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(acked) >= 500, f"only {len(acked)} acks in 30s"
        broker.kill9()
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(20)
    assert not t.is_alive()
    with lock:
        snapshot = dict(acked)
    broker.start()
    wait_for_topic(bs, topic, timeout=15)
    low, high = watermarks(bs, topic)
    assert low == 0
    assert high >= max(snapshot) + 1, f"high watermark {high}, acked up to {max(snapshot)}"
    got = {g.offset: g.value for g in confluent_consume(bs, topic, high, timeout=60)}
    lost = [o for o, v in snapshot.items() if got.get(o) != v]
    assert not lost, f"{len(lost)} acknowledged records lost or changed, e.g. offsets {lost[:10]}"
    assert_log_consistent(partition_dir(broker.data_dir, topic), high)


def _first_batch(log: Path) -> bytes:
    data = log.read_bytes()
    _, length = struct.unpack_from(">qi", data, 0)
    return data[:12 + length]


def _tail(kind: str, log: Path, next_offset: int) -> bytes:
    batch = _first_batch(log)
    rnd = random.Random(kind)
    if kind == "garbage":
        return rnd.randbytes(1000)
    if kind == "half_batch":
        whole = struct.pack(">q", next_offset) + batch[8:]
        return whole[:len(whole) // 2]
    if kind == "bad_crc_batch":
        whole = bytearray(struct.pack(">q", next_offset) + batch[8:])
        whole[-1] ^= 0xFF
        return bytes(whole)
    if kind == "zeros":
        return b"\0" * 4096
    if kind == "huge_length":
        return struct.pack(">qi", next_offset, 0x7FFFFFF0) + rnd.randbytes(200)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["garbage", "half_batch", "bad_crc_batch", "zeros",
                                  "huge_length"])
def test_torn_segment_tail_is_repaired(broker, topic, kind):
    bs = broker.bootstrap
    create_topic(bs, topic)
    recs = produce_acked(bs, topic, 50, seed=44)
    broker.kill9()
    log = active_segment(partition_dir(broker.data_dir, topic))
    with open(log, "ab") as f:
        f.write(_tail(kind, log, next_offset=50))
    broker.start()
    wait_for_topic(bs, topic, timeout=15)
    check_all_there(bs, topic, recs)
    more = produce_acked(bs, topic, 20, seed=45, first_offset=50)
    assert_records(confluent_consume(bs, topic, 70, timeout=30), recs + more)
    broker.restart()
    wait_for_topic(bs, topic, timeout=15)
    check_all_there(bs, topic, recs + more)
    assert_log_consistent(partition_dir(broker.data_dir, topic), 70)


def test_broken_indexes_are_rebuilt(make_broker, topic):
    b = make_broker(**{"log.index.interval.bytes": 256})
    bs = b.bootstrap
    create_topic(bs, topic)
    t0 = now_ms() - 1_000_000
    recs = [Rec(b"k%d" % i, b"v" * 500 + b"%d" % i, (), t0 + i * 10) for i in range(100)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=10))
    b.kill9()
    pdir = partition_dir(b.data_dir, topic)
    for suffix in (".index", ".timeindex"):
        for f in pdir.glob("*" + suffix):
            f.write_bytes(random.Random(suffix).randbytes(17))
    b.start()
    wait_for_topic(bs, topic, timeout=15)
    check_all_there(bs, topic, recs)
    for start in (1, 37, 64, 99):
        got = confluent_consume(bs, topic, 1, start=start)
        assert got[0].offset == start and got[0].value == recs[start].value
    c = Consumer(consumer_conf(bs))
    try:
        for target, want in ((t0 + 255, 26), (t0, 0), (t0 + 990, 99), (t0 + 991, -1)):
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert tp.offset == want, (target, tp.offset, want)
    finally:
        c.close()


def test_many_segments_survive_kill9(make_broker, topic):
    # 1 MiB is the smallest log.segment.bytes Kafka 4 accepts (KIP-1030)
    b = make_broker(**{"log.segment.bytes": 1048576})
    bs = b.bootstrap
    create_topic(bs, topic)
    rnd = random.Random(46)
    recs = [Rec(b"k%d" % i, rnd.randbytes(100_000), (("i", b"%d" % i),), now_ms())
            for i in range(45)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=9, acks="all"))
    pdir = partition_dir(b.data_dir, topic)
    logs = segment_logs(pdir)
    assert len(logs) >= 3, f"4.5 MB in 1 MiB segments made only {[p.name for p in logs]}"
    b.kill9()
    b.start()
    wait_for_topic(bs, topic, timeout=15)
    check_all_there(bs, topic, recs)
    assert_log_consistent(pdir, len(recs))


def test_cluster_id_topics_and_configs_survive_kill9(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic, partitions=3, config={"retention.ms": "7200000"})
    admin = admin_client(bs)
    before = admin.describe_cluster(request_timeout=10).result(timeout=10)
    broker.kill9()
    broker.start()
    wait_for_topic(bs, topic, partitions=3, timeout=15)
    admin = admin_client(bs)
    after = admin.describe_cluster(request_timeout=10).result(timeout=10)
    assert after.cluster_id == before.cluster_id and after.cluster_id
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([res], request_timeout=10)[res].result(timeout=10)
    assert configs["retention.ms"].value == "7200000"


def test_deleted_topic_stays_deleted_after_restart(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic)
    produce_acked(bs, topic, 5, seed=47)
    admin = admin_client(bs)
    admin.delete_topics([topic], request_timeout=10)[topic].result(timeout=10)
    broker.kill9()
    broker.start()
    md = admin_client(bs).list_topics(timeout=10)
    assert topic not in md.topics
    # and a new topic of the same name starts empty
    create_topic(bs, topic)
    assert watermarks(bs, topic) == (0, 0)


def test_created_topics_and_partitions_survive_kill9_without_data(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic, partitions=2)
    admin = admin_client(bs)
    admin.create_partitions([NewPartitions(topic, 5)], request_timeout=10)[topic].result(10)
    wait_for_topic(bs, topic, partitions=5)
    broker.kill9()
    broker.start()
    wait_for_topic(bs, topic, partitions=5, timeout=15)
    for p in range(5):
        assert watermarks(bs, topic, p) == (0, 0)
    assert_delivered(confluent_produce(bs, topic, [Rec(None, b"p4", (), None)], partition=4))


def test_repeated_kill9_cycles(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic)
    expected: list[Rec] = []
    for cycle in range(4):
        expected += produce_acked(bs, topic, 25, seed=50 + cycle, first_offset=len(expected),
                                  codec=["none", "gzip", "lz4", "zstd"][cycle])
        broker.kill9()
        broker.start()
        wait_for_topic(bs, topic, timeout=15)
    check_all_there(bs, topic, expected)
    assert_log_consistent(partition_dir(broker.data_dir, topic), len(expected))


def test_log_cut_mid_batch_with_stale_indexes(make_broker, topic):
    """The .log loses its tail (cut inside a batch) while .index/.timeindex still point
    past the cut: recovery keeps the whole batches before the cut, drops the rest, and
    offsets continue from there."""
    b = make_broker(**{"log.index.interval.bytes": 128})
    bs = b.bootstrap
    create_topic(bs, topic)
    t0 = now_ms() - 100_000
    recs = [Rec(b"k%d" % i, b"v" * 300 + b"%d" % i, (), t0 + i) for i in range(40)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=8))  # ~8 batches of 5
    b.kill9()
    pdir = partition_dir(b.data_dir, topic)
    log = active_segment(pdir)
    batches = walk_batches(log)
    assert len(batches) >= 4, batches
    # cut in the middle of the 4th batch
    keep_bytes = sum(size for *_, size in batches[:3]) + batches[3][2] // 2
    kept_end = batches[2][1] + 1
    with open(log, "r+b") as f:
        f.truncate(keep_bytes)
    b.start()
    wait_for_topic(bs, topic, timeout=15)
    assert watermarks(bs, topic) == (0, kept_end)
    assert_records(confluent_consume(bs, topic, kept_end, extra_wait=0.5), recs[:kept_end])
    assert_delivered(confluent_produce(bs, topic, [Rec(b"n", b"next", (), t0 + 1000)]),
                     first_offset=kept_end)
    c = Consumer(consumer_conf(bs))
    try:
        [tp] = c.offsets_for_times([TopicPartition(topic, 0, t0 + 500)], timeout=10)
        assert tp.offset == kept_end, "time index still points at records that are gone"
    finally:
        c.close()
    assert_log_consistent(pdir, kept_end + 1)


def test_every_segment_has_its_indexes(make_broker, topic):
    b = make_broker(**{"log.segment.bytes": 1048576})
    bs = b.bootstrap
    create_topic(bs, topic)
    rnd = random.Random(48)
    recs = [Rec(None, rnd.randbytes(200_000), (), None) for _ in range(12)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=12))
    pdir = partition_dir(b.data_dir, topic)
    for log in segment_logs(pdir):
        stem = log.name[:-4]
        for suffix in (".index", ".timeindex"):
            assert (pdir / (stem + suffix)).exists(), f"{stem}{suffix} missing: {os.listdir(pdir)}"


def test_second_broker_on_the_same_data_dir_is_refused(broker, topic):
    """Kafka locks its log dir (.lock); a second process must not write into it."""
    create_topic(broker.bootstrap, topic)
    recs = produce_acked(broker.bootstrap, topic, 10, seed=49)
    intruder = Broker({}, name="intruder")
    intruder.data_dir = broker.data_dir
    try:
        with pytest.raises(BrokerError):
            intruder.start(timeout=10)
    finally:
        intruder.dispose()
    check_all_there(broker.bootstrap, topic, recs)


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True)
    return res.returncode == 0


def test_full_disk_loses_nothing_acknowledged(make_broker, topic):
    b = make_broker()
    b.stop()
    if not _mount_tmpfs(b.data_dir, "16m"):
        pytest.skip("needs root and tmpfs mounts to simulate a full disk")
    try:
        b.start()
        bs = b.bootstrap
        create_topic(bs, topic)
        rnd = random.Random(60)
        acked: dict[int, bytes] = {}
        failures = 0
        p = Producer(producer_conf(bs, acks="all", **{"message.timeout.ms": 5000,
                                                      "retries": 0}))

        def report(err, msg):
            nonlocal failures
            if err is None:
                acked[msg.offset()] = msg.value()
            else:
                failures += 1

        for _ in range(40):  # up to 40 x 10 x 100 kB = 40 MB into 16 MB
            if not b.is_running():
                break
            for _ in range(10):
                p.produce(topic, rnd.randbytes(100_000), partition=0, on_delivery=report)
            p.flush(15)
            if failures >= 10:
                break
        p.flush(15)
        assert failures > 0, "16 MB disk never filled up"
        assert acked, "nothing was acknowledged before the disk filled"
        said = [line for line in b.log_text().splitlines() if "answering KAFKA_STORAGE_ERROR" in line]
        assert said and "No space left" in said[0], "a full disk failed appends and the log said nothing"
        assert len(said) <= 10, f"{len(said)} lines: append failures are not rate-limited"
        if b.is_running():
            b.kill9()
        subprocess.run(["mount", "-o", "remount,size=256m", str(b.data_dir)], check=True)
        b.start()
        wait_for_topic(bs, topic, timeout=15)
        low, high = watermarks(bs, topic)
        assert high >= max(acked) + 1
        got = {g.offset: g.value for g in confluent_consume(bs, topic, high, timeout=60)}
        lost = [o for o, v in acked.items() if got.get(o) != v]
        assert not lost, f"{len(lost)} acknowledged records lost after a full disk: {lost[:10]}"
        assert_delivered(confluent_produce(bs, topic, [Rec(None, b"after", (), None)]),
                         first_offset=high)
        assert_log_consistent(partition_dir(b.data_dir, topic), high + 1)
    finally:
        if b.is_running():
            b.kill9()
        subprocess.run(["umount", str(b.data_dir)], capture_output=True)


def test_sigterm_with_busy_clients_exits_promptly(broker, topic):
    bs = broker.bootstrap
    create_topic(bs, topic)
    produce_acked(bs, topic, 5, seed=61)
    c = Consumer(consumer_conf(bs, **{"fetch.wait.max.ms": 5000}))
    p = Producer(producer_conf(bs))
    try:
        c.assign([TopicPartition(topic, 0, 5)])  # long-polling at the end
        for _ in range(10):
            c.poll(0.1)
        p.produce(topic, b"x", partition=0)
        p.flush(10)
        for _ in range(5):
            c.poll(0.1)
        started = time.monotonic()
        code = broker.stop(timeout=15)
        took = time.monotonic() - started
    finally:
        c.close()
        p.flush(0)
    assert took < 10, f"SIGTERM with connected clients took {took:.1f}s"
    assert code in (0, 143), code
