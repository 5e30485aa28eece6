"""Connection admission and idle expiry, as Kafka's Acceptor and Selector do them."""

from __future__ import annotations

import pytest

from moldau.server.limits import ConnectionRegistry, ConnectionSettings, parse_overrides


class Conn:
    def __init__(self, now: float) -> None:
        self.last_active = now
        self.busy = False
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_limits_per_ip_overrides_and_broker_wide() -> None:
    settings = ConnectionSettings(max_connections=4, max_per_ip=1, per_ip_overrides="127.0.0.1:3")
    registry = ConnectionRegistry(lambda: settings)
    a = [Conn(0) for _ in range(6)]
    assert registry.admit(a[0], "10.0.0.1") is None
    assert "maximum of 1" in (registry.admit(a[1], "10.0.0.1") or "")
    assert [registry.admit(c, "127.0.0.1") for c in a[2:5]] == [None, None, None]
    assert "broker already has" in (registry.admit(a[5], "10.0.0.2") or "")
    registry.remove(a[0], "10.0.0.1")
    registry.remove(a[1], "10.0.0.1")  # never admitted: no effect
    assert registry.admit(a[5], "10.0.0.2") is None
    assert registry.per_ip == {"127.0.0.1": 3, "10.0.0.2": 1}
    assert registry.refused == 2


def test_idle_connections_expire_but_busy_ones_do_not() -> None:
    now = [1000.0]
    registry = ConnectionRegistry(lambda: ConnectionSettings(max_idle_ms=5000), clock=lambda: now[0])
    idle, busy, fresh = Conn(990.0), Conn(990.0), Conn(999.0)
    busy.busy = True
    for i, c in enumerate((idle, busy, fresh)):
        registry.admit(c, f"10.0.0.{i}")
    assert registry.expire_idle() == 1
    assert (idle.closed, busy.closed, fresh.closed) == (True, False, False)
    assert registry.sweep_interval() == pytest.approx(1.25)


def test_a_negative_idle_time_disables_expiry() -> None:
    registry = ConnectionRegistry(lambda: ConnectionSettings(max_idle_ms=-1), clock=lambda: 1e9)
    c = Conn(0)
    registry.admit(c, "10.0.0.1")
    assert registry.expire_idle() == 0 and not c.closed
    assert registry.sweep_interval() is None


def test_parse_overrides() -> None:
    assert parse_overrides("") == {}
    assert parse_overrides("10.1.1.1:5, localhost:7,[::1]:2") == {"10.1.1.1": 5, "127.0.0.1": 7, "::1": 2}
    with pytest.raises(ValueError):
        parse_overrides("10.1.1.1")
    with pytest.raises(ValueError):
        parse_overrides("10.1.1.1:x")


def test_unreadable_overrides_keep_the_previous_ones() -> None:
    current = [ConnectionSettings(max_per_ip=1, per_ip_overrides="10.0.0.1:2")]
    registry = ConnectionRegistry(lambda: current[0])
    assert registry.admit(Conn(0), "10.0.0.1") is None
    current[0] = ConnectionSettings(max_per_ip=1, per_ip_overrides="garbage")
    assert registry.admit(Conn(0), "10.0.0.1") is None  # still 2 for 10.0.0.1
    assert registry.admit(Conn(0), "10.0.0.1") is not None


def test_connection_creation_rate_admits_that_many_per_second() -> None:
    now = [10.0]
    registry = ConnectionRegistry(lambda: ConnectionSettings(max_creation_rate=2), clock=lambda: now[0])
    conns = [Conn(0) for _ in range(4)]
    assert registry.admit(conns[0], "a") is None
    now[0] += 0.5
    assert registry.admit(conns[1], "b") is None
    assert "max.connection.creation.rate" in (registry.admit(conns[2], "c") or "")
    now[0] += 0.6  # the first one is more than a second old
    assert registry.admit(conns[3], "c") is None
    assert registry.refused == 1
