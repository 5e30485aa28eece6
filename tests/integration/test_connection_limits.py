"""Connections cannot exhaust the broker's memory, and its connection limits hold.

Against a real broker process: slowloris clients announcing huge frames, ten thousand
idle connections, ``connections.max.idle.ms``, ``max.connections``,
``max.connections.per.ip`` and ``queued.max.request.bytes``, while real clients
(confluent-kafka, raw sockets) keep being served. Memory is the broker's VmRSS.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import statistics
import struct
import time

import pytest
from confluent_kafka import Producer

from .kafka_helpers import (
    Rec,
    assert_records,
    confluent_consume,
    create_topic,
    now_ms,
    producer_conf,
    roundtrip_ok,
)
from .raw_kafka import API_VERSIONS, closed_by_peer, connect, read_response, request

MiB = 1024 * 1024


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def api_versions_ok(sock: socket.socket, correlation_id: int = 7) -> bool:
    """The broker answers an ApiVersions request on this connection."""
    try:
        sock.sendall(request(API_VERSIONS, 0, correlation_id))
    except OSError:
        return False
    resp = read_response(sock)
    return resp is not None and resp[0] == correlation_id


def connect_from(bootstrap: str, source_ip: str, timeout: float = 10.0) -> socket.socket:
    """A connection from another loopback address (all of 127/8 is local on Linux)."""
    host, port = bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout, source_address=(source_ip, 0))


def produce_latencies(producer: Producer, topic: str, count: int) -> list[float]:
    """Seconds from produce to delivery report, one message at a time."""
    out = []
    for i in range(count):
        started = time.perf_counter()
        producer.produce(topic, value=b"v%d" % i, key=b"k")
        assert producer.flush(20) == 0
        out.append(time.perf_counter() - started)
    return out


def assert_no_traceback(broker, since: int) -> None:
    text = broker.log_text(since)
    assert "Traceback" not in text, text[-4000:]


@pytest.fixture
def many_files():
    """Raise this process's open-file limit to its hard limit (the broker inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    yield target
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_slowloris_frames_leave_memory_bounded_and_others_served(make_broker, topic) -> None:
    broker = make_broker()
    mark = broker.log_size()
    create_topic(broker.bootstrap, topic)
    producer = Producer(producer_conf(broker.bootstrap, acks="all", **{"linger.ms": 0}))
    produce_latencies(producer, topic, 5)  # warm up: metadata, connections
    before = produce_latencies(producer, topic, 30)
    rss_before = rss_mb(broker.pid)
    slow = []
    try:
        for _ in range(50):
            s = connect(broker.bootstrap)
            s.sendall(struct.pack(">i", 100 * MiB) + b"\x00" * 2048)  # announces 100 MiB, sends 2 KB
            slow.append(s)
        time.sleep(1.0)
        during = produce_latencies(producer, topic, 30)
        rss_during = rss_mb(broker.pid)
        got = confluent_consume(broker.bootstrap, topic, 65, timeout=20)
        assert len(got) == 65
        assert all(not closed_by_peer(s, timeout=0.01) for s in slow[:5])  # still open: within limits
    finally:
        for s in slow:
            s.close()
    print(f"\nslowloris: RSS {rss_before:.0f} MB before, {rss_during:.0f} MB with 50 x 100 MiB announced; "
          f"produce p50 {statistics.median(before) * 1000:.1f} ms before, {statistics.median(during) * 1000:.1f} ms during")
    assert rss_during < 150, f"RSS {rss_during:.0f} MB with 50 slowloris connections"
    assert statistics.median(during) < max(5 * statistics.median(before), statistics.median(before) + 0.25)
    assert_no_traceback(broker, mark)


def test_ten_thousand_idle_connections_leave_memory_bounded(make_broker, topic, many_files) -> None:
    if many_files < 10_500:
        pytest.skip(f"needs 10,500 open files, the hard limit is {many_files}")
    broker = make_broker()
    mark = broker.log_size()
    roundtrip_ok(broker.bootstrap)
    rss_before = rss_mb(broker.pid)
    socks: list[socket.socket] = []
    try:
        for i in range(10_000):
            s = socket.create_connection((broker.host, broker.port), timeout=10)
            socks.append(s)
            if i % 2 == 0:  # half of them have talked once, as a client's bootstrap does
                assert api_versions_ok(s, i), f"connection {i} got no answer"
        assert api_versions_ok(socks[-1])  # the broker has accepted them all by now
        rss_idle = rss_mb(broker.pid)
        roundtrip_ok(broker.bootstrap, topic)  # other clients are served meanwhile
        assert api_versions_ok(socks[1], 1) and api_versions_ok(socks[5000], 2)
    finally:
        for s in socks:
            s.close()
    print(f"\n10,000 idle connections: RSS {rss_before:.0f} MB before, {rss_idle:.0f} MB with them open")
    assert rss_idle - rss_before < 150, f"{rss_idle - rss_before:.0f} MB for 10,000 idle connections"
    assert_no_traceback(broker, mark)


def test_idle_connections_are_closed_after_connections_max_idle_ms(make_broker) -> None:
    broker = make_broker(**{"connections.max.idle.ms": 1000})
    idle = connect(broker.bootstrap)
    active = connect(broker.bootstrap)
    assert api_versions_ok(idle) and api_versions_ok(active)
    started = time.monotonic()
    deadline = started + 4
    while time.monotonic() < deadline:  # the active one talks every 300 ms
        assert api_versions_ok(active), "an active connection was closed"
        time.sleep(0.3)
    assert closed_by_peer(idle, timeout=1)
    assert api_versions_ok(active)
    idle.close()
    active.close()


def _admitted(bootstrap: str, timeout: float = 10.0) -> socket.socket:
    """A connection the broker answers on. The harness's own readiness probe may still
    count against max.connections until the broker has seen it close: retry briefly."""
    deadline = time.monotonic() + timeout
    while True:
        sock = connect(bootstrap)
        if api_versions_ok(sock):
            return sock
        sock.close()
        assert time.monotonic() < deadline, "no connection admitted"
        time.sleep(0.1)


def test_max_connections_makes_extra_connections_wait_for_a_free_slot(make_broker) -> None:
    """Kafka's Acceptor: past ``max.connections`` nothing is refused; the next
    connection waits (in the backlog, unanswered) until an open one closes."""
    broker = make_broker(**{"max.connections": 4})
    kept = [_admitted(broker.bootstrap) for _ in range(4)]
    waiting: list[socket.socket] = []
    try:
        waiting = [connect(broker.bootstrap) for _ in range(2)]
        for s in waiting:
            s.settimeout(1.0)
            s.sendall(request(API_VERSIONS, 0, 5))
        time.sleep(1.0)
        assert all(api_versions_ok(s, 9) for s in kept)  # the open ones keep working
        with pytest.raises(TimeoutError):  # not served while every slot is taken
            waiting[0].recv(4)
        kept.pop().close()
        waiting[0].settimeout(10)
        assert read_response(waiting[0])[0] == 5  # served once a slot is free
        kept.pop().close()
        waiting[1].settimeout(10)
        assert read_response(waiting[1])[0] == 5
    finally:
        for s in kept + waiting:
            s.close()


def test_max_connections_per_ip_refuses_only_that_address(make_broker, topic) -> None:
    broker = make_broker(**{"max.connections.per.ip": 3, "max.connections.per.ip.overrides": "127.0.0.3:5"})
    from_2 = [connect_from(broker.bootstrap, "127.0.0.2") for _ in range(3)]
    from_3 = [connect_from(broker.bootstrap, "127.0.0.3") for _ in range(5)]
    try:
        assert all(api_versions_ok(s) for s in from_2 + from_3)
        over_2 = connect_from(broker.bootstrap, "127.0.0.2")
        over_3 = connect_from(broker.bootstrap, "127.0.0.3")
        assert closed_by_peer(over_2, timeout=5) and closed_by_peer(over_3, timeout=5)
        over_2.close()
        over_3.close()
        assert all(api_versions_ok(s, 3) for s in from_2 + from_3)
        roundtrip_ok(broker.bootstrap, topic)  # 127.0.0.1 is not limited by the others
    finally:
        for s in from_2 + from_3:
            s.close()


def test_frames_beyond_queued_max_request_bytes_cannot_wedge_the_broker(make_broker, topic) -> None:
    """A budget of 4 MiB: one client holds most of it in a half-sent frame while another
    sends a 3 MiB produce request; that request is still served, and so is the rest."""
    budget = 4 * MiB
    broker = make_broker(**{
        "queued.max.request.bytes": budget,
        "socket.request.max.bytes": budget,
        "message.max.bytes": budget,
    })
    mark = broker.log_size()
    create_topic(broker.bootstrap, topic, config={"max.message.bytes": str(budget)})
    hog = connect(broker.bootstrap)
    try:
        hog.sendall(struct.pack(">i", budget) + b"\x00" * (3 * MiB))  # most of the budget, never finished
        time.sleep(0.5)
        big = [Rec(key=b"k%d" % i, value=bytes([i]) * MiB, timestamp=now_ms()) for i in range(3)]
        producer = Producer(producer_conf(broker.bootstrap, acks="all", **{
            "message.max.bytes": budget, "batch.size": budget, "linger.ms": 50}))
        for r in big:
            producer.produce(topic, key=r.key, value=r.value, timestamp=r.timestamp)
        assert producer.flush(30) == 0
        assert_records(confluent_consume(broker.bootstrap, topic, 3, timeout=30,
                                         **{"fetch.max.bytes": 8 * MiB,
                                            "max.partition.fetch.bytes": 8 * MiB}), big)
        roundtrip_ok(broker.bootstrap)
    finally:
        with contextlib.suppress(OSError):
            hog.close()
    assert_no_traceback(broker, mark)


def test_closing_warnings_are_rate_limited(make_broker) -> None:
    """A client that keeps sending what the broker must refuse cannot flood its log."""
    broker = make_broker()
    mark = broker.log_size()
    for i in range(100):
        for payload in (request(999, 0, i), struct.pack(">i", 2**31 - 1)):  # unknown API; too large
            s = connect(broker.bootstrap)
            s.sendall(payload)
            assert closed_by_peer(s, timeout=5)
            s.close()
    roundtrip_ok(broker.bootstrap)
    text = broker.log_text(mark)
    unknown = text.count("unknown or unsupported API key")
    too_large = text.count("exceeds socket.request.max.bytes")
    assert 1 <= unknown <= 10 and 1 <= too_large <= 10, (unknown, too_large)
