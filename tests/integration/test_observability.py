"""The HTTP listener against real clients: /metrics moves by what confluent-kafka
produced and consumed, /healthz and /readyz answer, garbage and slow HTTP clients are
cut off without disturbing Kafka produce, and JSON log lines parse.

Cost: two broker processes (one for the module, one with JSON logs), ~15 s.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from .broker_process import Broker, free_port
from .kafka_helpers import (
    Rec,
    assert_delivered,
    confluent_produce,
    consumer_conf,
    create_topic,
    unique_topic,
    wait_until,
)

IDLE_TIMEOUT_MS = 1000
MAX_HTTP_CONNECTIONS = 16


@pytest.fixture(scope="module")
def observed() -> Iterator[tuple[Broker, str]]:
    port = free_port()
    b = Broker({"moldau.http.listener": f"127.0.0.1:{port}",
                "moldau.http.idle.timeout.ms": IDLE_TIMEOUT_MS,
                "moldau.http.max.connections": MAX_HTTP_CONNECTIONS}, name="observed")
    try:
        b.start()
        yield b, f"http://127.0.0.1:{port}"
    finally:
        b.dispose()


def get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = get(base + "/metrics")
    assert status == 200
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_healthz_and_readyz(observed):
    _, base = observed
    assert get(base + "/healthz") == (200, "ok\n")
    status, body = get(base + "/readyz")
    assert status == 200, body
    assert json.loads(body) == {"ready": True, "failed": []}
    assert get(base + "/nothing-here")[0] == 404


def test_produce_moves_messages_and_bytes_in(observed):
    broker, base = observed
    topic = unique_topic("metrics-in")
    create_topic(broker.bootstrap, topic)
    before = scrape(base)
    n, size = 300, 100
    results = confluent_produce(broker.bootstrap, topic, [Rec(None, bytes([i % 256]) * size) for i in range(n)],
                                chunks=3)
    assert_delivered(results)
    after = scrape(base)
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == n
    assert value(before, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 0
    assert value(after, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic) >= n * size
    produces = value(after, "kafka_network_requestmetrics_requests_total", request="Produce") - value(
        before, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert produces >= 3  # three flushes, three requests at least
    assert value(after, "kafka_network_requestmetrics_totaltime_seconds_count", request="Produce") == value(
        after, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert value(after, "kafka_log_log_logendoffset", topic=topic, partition="0") == n
    assert value(after, "kafka_log_log_size", topic=topic, partition="0") >= n * size
    assert value(after, "kafka_log_log_numlogsegments", topic=topic, partition="0") == 1
    assert value(after, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert value(after, "kafka_controller_kafkacontroller_activecontrollercount") == 1


def test_lag_after_a_consumer_stops(observed):
    broker, base = observed
    topic = unique_topic("metrics-lag")
    create_topic(broker.bootstrap, topic)
    assert_delivered(confluent_produce(broker.bootstrap, topic, [Rec(None, b"v%d" % i) for i in range(40)]))
    group = unique_topic("lag-group")
    c = Consumer(consumer_conf(broker.bootstrap, **{"group.id": group}))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        seen = 0
        deadline = time.monotonic() + 20
        while seen < 40 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                seen += 1
        assert seen == 40
        c.commit(offsets=[TopicPartition(topic, 0, 40)], asynchronous=False)
    finally:
        c.close()
    assert_delivered(confluent_produce(broker.bootstrap, topic, [Rec(None, b"late") for _ in range(25)]),
                     first_offset=40)
    samples = scrape(base)
    assert value(samples, "kafka_consumergroup_current_offset", consumergroup=group, topic=topic, partition="0") == 40
    assert value(samples, "kafka_consumergroup_lag", consumergroup=group, topic=topic, partition="0") == 25
    assert value(samples, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic) > 0


def test_errors_counted_by_api_and_code(observed):
    broker, base = observed
    before = scrape(base)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    missing = unique_topic("never-created")
    with pytest.raises(Exception, match="UNKNOWN_TOPIC_OR_PART"):
        admin.delete_topics([missing], request_timeout=10)[missing].result(timeout=15)
    after = scrape(base)
    labels = {"request": "DeleteTopics", "error": "UNKNOWN_TOPIC_OR_PARTITION"}
    assert value(after, "kafka_network_requestmetrics_errors_total", **labels) == value(
        before, "kafka_network_requestmetrics_errors_total", **labels) + 1


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_garbage_and_slow_http_clients_leave_kafka_alone(observed):
    broker, base = observed
    host, port = base.removeprefix("http://").split(":")
    address = (host, int(port))
    # garbage and oversized requests are answered 400 and closed
    with socket.create_connection(address, timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200) + b"\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.")
        assert _closed_within(s, 5)
    with socket.create_connection(address, timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 400") or _closed_within(s, 5)
    # slow-loris: every connection slot taken by clients that never finish their headers
    slow = [socket.create_connection(address, timeout=5) for _ in range(MAX_HTTP_CONNECTIONS + 8)]
    try:
        for s in slow:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        topic = unique_topic("metrics-slow")
        results = confluent_produce(broker.bootstrap, topic, [Rec(None, b"x" * 50) for _ in range(500)], chunks=5)
        assert_delivered(results)
        assert time.monotonic() - started < 15
        # those past the connection limit were dropped at once, the others are cut
        # off after the idle timeout
        assert all(_closed_within(s, 0.1) for s in slow[MAX_HTTP_CONNECTIONS:])
        assert all(_closed_within(s, IDLE_TIMEOUT_MS / 1000 + 1) for s in slow)
    finally:
        for s in slow:
            s.close()
    # a client that never reads its (large) answer is cut off too
    with socket.create_connection(address, timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for _ in range(50):
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(IDLE_TIMEOUT_MS / 1000 * 2)
    assert wait_until(lambda: get(base + "/healthz", timeout=2)[0] == 200, timeout=10)
    samples = scrape(base)
    assert value(samples, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 500


def test_json_log_lines_parse():
    port = free_port()
    b = Broker({"moldau.log.format": "json", "moldau.http.listener": f"127.0.0.1:{port}"}, name="jsonlog")
    try:
        b.start()
        topic = unique_topic("jsonlog")
        create_topic(b.bootstrap, topic)
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        b.stop()
        lines = [line for line in b.log_text().splitlines() if line and not line.startswith("===")]
        assert len(lines) >= 3
        records = [json.loads(line) for line in lines]
        for record in records:
            assert {"time", "level", "logger", "message"} <= record.keys()
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
        assert any("listening on" in r["message"] for r in records)
        assert any(r["message"] == "stopped cleanly" for r in records)
    finally:
        b.dispose()
