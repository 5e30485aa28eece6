"""Compaction with a real broker and librdkafka: one value per key, tombstones expire,
offsets stay, and a kill -9 in the middle of a cleaning pass loses nothing."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from .kafka_helpers import consumer_conf, create_topic, producer_conf, wait_until, watermarks

CLEANER = {
    "log.cleaner.backoff.ms": 100,
}


def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]], **conf: object
) -> list[int]:
    """Produce in order; returns each record's offset."""
    settings: dict[str, object] = {"linger.ms": 20, "batch.num.messages": 200, **conf}
    p = Producer(producer_conf(bootstrap, **settings))
    offsets: list[int] = [-1] * len(records)

    def report(i: int):
        def cb(err, msg):
            assert err is None, err
            offsets[i] = msg.offset()

        return cb

    for i, (key, value) in enumerate(records):
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=0, on_delivery=report(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0
    assert -1 not in offsets
    return offsets


def read_all(
    bootstrap: str, topic: str, timeout: float = 30.0
) -> list[tuple[int, bytes, bytes | None]]:
    """Every record from the start to the high watermark."""
    _, high = watermarks(bootstrap, topic)
    c = Consumer(consumer_conf(bootstrap, **{"enable.partition.eof": True}))
    out: list[tuple[int, bytes, bytes | None]] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= high:
                        break
                    continue
                raise KafkaException(msg.error())
            out.append((msg.offset(), msg.key(), msg.value()))
            if msg.offset() >= high - 1:
                break
    finally:
        c.close()
    return out


def check_against_produced(
    got: list[tuple[int, bytes, bytes | None]], produced: dict[int, tuple[bytes, bytes | None]]
) -> None:
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(set(offsets)), "offsets must be strictly increasing, no duplicates"
    for offset, key, value in got:
        assert produced[offset] == (key, value), f"record at offset {offset} changed"
    latest: dict[bytes, int] = {}
    for offset, (key, _) in sorted(produced.items()):
        latest[key] = offset
    seen = set(offsets)
    for key, offset in latest.items():
        if produced[offset][1] is not None:
            assert offset in seen, f"latest value of {key!r} (offset {offset}) lost"


def test_compacted_topic_keeps_one_value_per_key(make_broker, topic):
    b = make_broker(**CLEANER)
    create_topic(
        b.bootstrap,
        topic,
        config={
            "cleanup.policy": "compact",
            "segment.bytes": "8192",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "1500",
        },
    )
    records: list[tuple[bytes, bytes | None]] = []
    for i in range(3000):
        records.append((b"key-%d" % (i % 40), b"value-%d-" % i + b"x" * 60))
    for k in range(10):
        records.append((b"key-%d" % k, None))  # delete keys 0..9
    records += [(b"filler-%d" % i, b"f" * 60) for i in range(300)]  # roll past them
    offsets = produce(b.bootstrap, topic, records, **{"batch.size": 4000})
    produced = {o: r for o, r in zip(offsets, records, strict=True)}
    main_keys = {b"key-%d" % k for k in range(40)}

    def compacted() -> list[tuple[int, bytes, bytes | None]] | None:
        got = read_all(b.bootstrap, topic)
        keyed = [r for r in got if r[1] in main_keys]
        keys = [k for _, k, _ in keyed]
        if len(keys) != len(set(keys)) or any(v is None for _, _, v in keyed):
            return None
        return got

    got = wait_until(compacted, timeout=60, interval=0.5, message="compaction and tombstone expiry")
    check_against_produced(got, produced)
    values = {k: v for _, k, v in got if k in main_keys}
    assert set(values) == {b"key-%d" % k for k in range(10, 40)}
    for key, value in values.items():
        last = max(o for o, r in produced.items() if r[0] == key)
        assert produced[last][1] == value
    low, high = watermarks(b.bootstrap, topic)
    assert (low, high) == (0, len(records)), "offsets, log start and end are unchanged"


def test_kill9_during_cleaning_loses_nothing(make_broker, topic):
    b = make_broker(**{**CLEANER, "log.cleaner.enable": "false"})
    create_topic(
        b.bootstrap,
        topic,
        config={
            "cleanup.policy": "compact",
            "segment.bytes": "1048576",
            "min.cleanable.dirty.ratio": "0.01",
        },
    )
    records = [(b"key-%d" % (i % 500), b"%08d" % i + b"v" * 1000) for i in range(40_000)]
    # Unique keys, more than a segment's worth: the active segment holds only these.
    records += [(b"filler-%d" % i, b"f" * 1000) for i in range(1100)]
    offsets = produce(b.bootstrap, topic, records)
    produced = {o: r for o, r in zip(offsets, records, strict=True)}
    b.stop()

    # Restart with the cleaner on, and kill -9 as soon as a cleaned segment is on disk.
    b.settings["log.cleaner.enable"] = "true"
    b.restart()
    partition_dir = Path(b.data_dir) / f"{topic}-0"

    def cleaning() -> bool:
        return any(p.name.endswith((".cleaned", ".swap")) for p in partition_dir.iterdir())

    wait_until(cleaning, timeout=60, interval=0.005, message="a cleaning pass in progress")
    b.kill9()
    assert any(p.name.endswith((".cleaned", ".swap")) for p in partition_dir.iterdir())

    b.restart()
    check_against_produced(read_all(b.bootstrap, topic, timeout=60), produced)

    # The cleaner finishes the job after the restart.
    def done():
        got = read_all(b.bootstrap, topic, timeout=60)
        keys = [k for _, k, _ in got if k.startswith(b"key-")]
        return got if len(keys) == len(set(keys)) else None

    got = wait_until(done, timeout=120, interval=1.0, message="compaction after the restart")
    check_against_produced(got, produced)
    assert watermarks(b.bootstrap, topic) == (0, len(records))
