"""kcat (Debian's, librdkafka 2.0.2) against a real Moldau broker."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from .kafka_helpers import (
    CODECS,
    Rec,
    assert_delivered,
    confluent_consume,
    confluent_produce,
    create_topic,
    now_ms,
    sample_records,
    unique_topic,
    wait_for_topic,
)

KCAT = shutil.which("kcat") or shutil.which("kafkacat")

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(KCAT is None, reason="kcat is not installed (scripts/test installs it)"),
]


def kcat(*args: str, stdin: bytes | None = None, timeout: float = 30.0,
         check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([KCAT, *args], input=stdin, capture_output=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, (
            f"kcat {' '.join(args)} exited {proc.returncode}\n"
            f"stderr: {proc.stderr.decode(errors='replace')[-3000:]}"
        )
    return proc


@pytest.mark.parametrize("codec", CODECS)
def test_produce_with_codec_and_consume_with_format(shared_broker, topic, codec):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    lines = [f"key-{i}:value {i} " + "x" * (i * 37 % 500) for i in range(50)]
    args = ["-b", bs, "-P", "-t", topic, "-p", "0", "-K", ":", "-H", "origin=kcat",
            "-H", "codec=" + codec]
    if codec != "none":
        args += ["-z", codec]
    before = now_ms()
    kcat(*args, stdin=("\n".join(lines) + "\n").encode())
    after = now_ms()

    out = kcat("-b", bs, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q",
               "-f", "%o|%k|%s|%h|%T\n").stdout.decode()
    rows = [line.split("|") for line in out.splitlines() if line]
    assert len(rows) == len(lines), out[-2000:]
    for i, (row, line) in enumerate(zip(rows, lines, strict=True)):
        key, value = line.split(":", 1)
        offset, k, v, headers, ts = row
        assert int(offset) == i
        assert (k, v) == (key, value)
        assert headers == f"origin=kcat,codec={codec}"
        assert before - 1000 <= int(ts) <= after + 1000

    # and the same bytes through another client
    got = confluent_consume(bs, topic, len(lines))
    assert [(g.key, g.value) for g in got] == [
        tuple(x.encode() for x in line.split(":", 1)) for line in lines
    ]
    assert all(g.headers == (("origin", b"kcat"), ("codec", codec.encode())) for g in got)


def test_consume_json_of_records_from_another_client(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    t0 = now_ms() - 10_000
    recs = [Rec(b"k%d" % i, b"payload-%d" % i, (("h", b"%d" % i),), t0 + i) for i in range(20)]
    recs.append(Rec(None, b"no key", (), t0 + 20))
    recs.append(Rec(b"tombstone", None, (), t0 + 21))
    assert_delivered(confluent_produce(bs, topic, recs, chunks=3,
                                       **{"compression.type": "lz4"}))
    out = kcat("-b", bs, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q",
               "-J").stdout.decode()
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(docs) == len(recs)
    for i, (d, r) in enumerate(zip(docs, recs, strict=True)):
        assert d["topic"] == topic and d["partition"] == 0 and d["offset"] == i
        assert d["key"] == (None if r.key is None else r.key.decode())
        assert d["payload"] == (None if r.value is None else r.value.decode())
        assert d["ts"] == r.timestamp and d["tstype"] == "create"
        expected_headers = [x for kv in r.headers for x in (kv[0], kv[1].decode())]
        assert (d.get("headers") or []) == expected_headers


def test_metadata_list_json(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic, partitions=3)
    doc = json.loads(kcat("-b", bs, "-L", "-J", "-t", topic).stdout)
    assert len(doc["brokers"]) == 1
    assert doc["brokers"][0]["name"] == bs
    [t] = [t for t in doc["topics"] if t["topic"] == topic]
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    broker_id = doc["brokers"][0]["id"]
    for p in t["partitions"]:
        assert p["leader"] == broker_id
        assert [r["id"] for r in p["replicas"]] == [broker_id]
        assert [r["id"] for r in p["isrs"]] == [broker_id]


def test_query_offset_by_timestamp_and_consume_from_timestamp(shared_broker, topic):
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    t0 = now_ms() - 50_000
    recs = [Rec(None, b"m%d" % i, (), t0 + i * 1000) for i in range(10)]
    assert_delivered(confluent_produce(bs, topic, recs, chunks=2))

    out = kcat("-b", bs, "-Q", "-t", f"{topic}:0:{t0 + 3500}").stdout.decode()
    m = re.search(r"\[\s*0\s*\]\s+offset\s+(-?\d+)", out)
    assert m, out
    assert int(m.group(1)) == 4

    out = kcat("-b", bs, "-C", "-t", topic, "-p", "0", "-o", f"s@{t0 + 7000}", "-e", "-q",
               "-f", "%o %s\n").stdout.decode()
    assert out.splitlines() == ["7 m7", "8 m8", "9 m9"]


def test_produce_to_auto_created_topic(make_broker):
    b = make_broker(**{"auto.create.topics.enable": "true", "num.partitions": 2})
    topic = unique_topic("kcat-auto")
    kcat("-b", b.bootstrap, "-P", "-t", topic, "-p", "1", "-K", ":",
         stdin=b"a:1\nb:2\n")
    wait_for_topic(b.bootstrap, topic, partitions=2)
    out = kcat("-b", b.bootstrap, "-C", "-t", topic, "-p", "1", "-o", "beginning", "-e",
               "-q", "-f", "%k=%s\n").stdout.decode()
    assert out.splitlines() == ["a=1", "b=2"]


def test_sample_records_round_trip_to_kcat_binary_format(shared_broker, topic):
    """Arbitrary binary values survive: compare value lengths reported by kcat (%S)."""
    bs = shared_broker.bootstrap
    create_topic(bs, topic)
    recs = sample_records(20, seed=31)
    assert_delivered(confluent_produce(bs, topic, recs, **{"compression.type": "zstd"}))
    out = kcat("-b", bs, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q",
               "-f", "%o %K %S\n").stdout.decode()
    expected = [
        f"{i} {-1 if r.key is None else len(r.key)} {-1 if r.value is None else len(r.value)}"
        for i, r in enumerate(recs)
    ]
    assert out.splitlines() == expected
