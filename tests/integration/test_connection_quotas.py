"""Connection creation rates as Kafka enforces them, against a real broker process.

- ``listener.name.plaintext.max.connection.creation.rate``: connections opened faster
  than the rate are all served, accepted late (the acceptor waits out the throttle);
  the delays are measured from the client's side (connect to first answer).
- ``connection_creation_rate`` on an ``ip`` entity (AlterClientQuotas, sent by hand: no
  Python client has the call): connections from that address over the rate are closed
  after the throttle time, unanswered; other addresses are not affected.

One broker with ``quota.window.num=2`` (a one-second window). Cost: ~15 s.
"""

from __future__ import annotations

import socket
import time

import pytest
from confluent_kafka import Producer

from .conftest import _dispose, _new_broker
from .kafka_helpers import create_topic, producer_conf
from .raw_kafka import API_VERSIONS, connect, read_response, request
from .test_connection_limits import connect_from
from .test_quotas import alter_quotas, describe_filter

RATE = 5  # connections per second on the listener
BURST = 20


@pytest.fixture(scope="module")
def rbroker():
    b = _new_broker({"quota.window.num": 2, "listener.name.plaintext.max.connection.creation.rate": RATE}, "rates")
    yield b
    _dispose(b)


def _answer_delays(
    socks: list[socket.socket], opened: list[float], closed: list[float] | None = None
) -> list[float | None]:
    """Send ApiVersions on each connection; seconds from its connect to the answer (None:
    closed unanswered; then the seconds to the close go to ``closed``). Connections are
    accepted in order, so reading them in order measures each delay to within the one
    before."""
    for i, sock in enumerate(socks):
        sock.sendall(request(API_VERSIONS, 0, i + 1))
    delays: list[float | None] = []
    for i, sock in enumerate(socks):
        answer = read_response(sock)
        delays.append(None if answer is None else time.monotonic() - opened[i])
        if answer is None and closed is not None:
            closed.append(time.monotonic() - opened[i])
        if answer is not None:
            assert answer[0] == i + 1
    return delays


def test_connections_faster_than_the_rate_are_accepted_late_not_refused(rbroker) -> None:
    time.sleep(1.5)  # let the harness's own connections fall out of the window
    socks: list[socket.socket] = []
    opened: list[float] = []
    try:
        start = time.monotonic()
        for _ in range(BURST):
            socks.append(connect(rbroker.bootstrap, timeout=20))
            opened.append(time.monotonic())
        connected = time.monotonic() - start
        delays = _answer_delays(socks, opened)
    finally:
        for sock in socks:
            sock.close()
    print(f"{BURST} connections opened in {connected * 1000:.0f} ms; answered after (s): "
          + " ".join(f"{d:.2f}" if d is not None else "closed" for d in delays))
    assert all(d is not None for d in delays), f"a connection was refused: {delays}"
    answered = [d for d in delays if d is not None]
    assert connected < 1.0  # the kernel completes the handshakes: the broker takes them in late
    assert max(answered[:3]) < 1.0, answered  # the first ones are within the rate
    # past a burst of about one window's worth, they are taken in at ~RATE per second
    # (Kafka's sampled rate lets them in in small bunches as old samples expire)
    late = sum(1 for d in answered if d > 0.1)
    assert late >= BURST - 2 * RATE, answered
    assert (BURST - 2 * RATE) / RATE * 0.8 <= answered[-1] <= BURST / RATE * 2.5, answered


def test_real_clients_connecting_at_once_all_get_through(rbroker, topic) -> None:
    create_topic(rbroker.bootstrap, topic)
    time.sleep(1.5)
    producers = [Producer(producer_conf(rbroker.bootstrap, **{"client.id": f"p{i}"})) for i in range(8)]
    start = time.monotonic()
    for i, p in enumerate(producers):
        p.produce(topic, value=b"v%d" % i)
    assert all(p.flush(30) == 0 for p in producers), "a producer could not connect"
    print(f"8 producers (16+ connections at {RATE}/s) delivered in {time.monotonic() - start:.2f} s")


def test_an_ip_connection_creation_rate_closes_the_excess_after_the_throttle(rbroker) -> None:
    b = rbroker.bootstrap
    limited, other = "127.0.0.2", "127.0.0.3"
    assert alter_quotas(b, [("ip", limited)], {"connection_creation_rate": 2}) == [0]
    assert describe_filter(b, [("ip", 0, limited)]) == (0, [([("ip", limited)], {"connection_creation_rate": 2.0})])
    time.sleep(1.5)
    socks, opened = [], []
    try:
        for _ in range(6):
            socks.append(connect_from(b, limited, timeout=20))
            opened.append(time.monotonic())
        closed_after: list[float] = []
        delays = _answer_delays(socks, opened, closed_after)
        others = [connect_from(b, other, timeout=20) for _ in range(3)]
        try:
            other_delays = _answer_delays(others, [time.monotonic()] * 3)
        finally:
            for sock in others:
                sock.close()
    finally:
        for sock in socks:
            sock.close()
    print(f"from {limited} at 2/s: " + " ".join(f"{d:.2f}" if d is not None else "closed" for d in delays)
          + "; closed after (s): " + " ".join(f"{d:.2f}" for d in closed_after))
    answered = [d for d in delays if d is not None]
    assert 1 <= len(answered) <= 3, delays  # a one-second window holds two
    assert delays[0] is not None and len(closed_after) >= 3, delays
    assert closed_after[0] >= 0.2, closed_after  # closed after the throttle time, not at once
    assert all(d is not None for d in other_delays), "another address was throttled"

    # the closed ones were not counted: once the window passed, that address connects again
    time.sleep(1.5)
    sock = connect_from(b, limited, timeout=20)
    try:
        assert _answer_delays([sock], [time.monotonic()])[0] is not None
    finally:
        sock.close()
    assert alter_quotas(b, [("ip", limited)], {"connection_creation_rate": None}) == [0]
    assert describe_filter(b, [("ip", 2, None)]) == (0, [])
