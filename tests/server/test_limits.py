"""Connection admission and idle expiry, as Kafka's Acceptor and Selector do them."""

from __future__ import annotations

import asyncio
import json

import pytest

from moldau.security.quotas import IP, ClientQuotas, entity_key
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


def test_creation_rate_delays_connections_and_never_refuses_them() -> None:
    now = [10.0]
    settings = ConnectionSettings(max_creation_rate=2, quota_samples=2)
    registry = ConnectionRegistry(lambda: settings, clock=lambda: now[0])
    # a young sensor counts one whole window: two at once are within 2 per second
    assert registry.creation_delay("PLAINTEXT") == 0
    assert registry.creation_delay("PLAINTEXT") == 0
    assert registry.creation_delay("PLAINTEXT") == pytest.approx(0.5)  # (3 - 2) / 2 * 1 s
    now[0] += 0.5
    assert registry.creation_delay("PLAINTEXT") == pytest.approx(0.5)  # 4 in 1 s: (4-2)/2 * 1
    assert registry.creation_delay("PLAINTEXT") == pytest.approx(1.0)  # capped at one window
    assert registry.refused == 0 and registry.throttled == 3


def test_listener_rates_and_the_protected_inter_broker_listener() -> None:
    now = [0.0]
    settings = ConnectionSettings(
        max_creation_rate=1, listener_creation_rates={"CLIENTS": 1, "REPLICATION": 100},
        protected_listener="REPLICATION", listener_count=2, quota_samples=2,
    )
    registry = ConnectionRegistry(lambda: settings, clock=lambda: now[0])
    assert registry.creation_delay("CLIENTS") == 0
    assert registry.creation_delay("CLIENTS") > 0
    # the inter-broker listener is not held back by the broker-wide rate
    assert [registry.creation_delay("REPLICATION") for _ in range(5)] == [0] * 5


def test_ip_rate_closes_after_the_throttle_and_uncounts_the_connection() -> None:
    now = [0.0]
    quotas = ClientQuotas(clock=lambda: now[0])
    quotas.samples = 2  # quota.window.num
    quotas.apply(entity_key(((IP, None),)), json.dumps({"connection_creation_rate": 1}))
    quotas.apply(entity_key(((IP, "10.0.0.9"),)), json.dumps({"connection_creation_rate": 100}))
    settings = ConnectionSettings(quota_samples=2)
    registry = ConnectionRegistry(lambda: settings, clock=lambda: now[0], quotas=quotas)
    assert registry.ip_close_delay("PLAINTEXT", "10.0.0.1") == 0
    assert registry.ip_close_delay("PLAINTEXT", "10.0.0.1") == pytest.approx(1.0)  # (2-1)/1 * 1 s
    assert registry.ip_close_delay("PLAINTEXT", "10.0.0.2") == 0  # each IP its own
    assert [registry.ip_close_delay("PLAINTEXT", "10.0.0.9") for _ in range(5)] == [0] * 5
    now[0] += 0.5  # the throttled one was not counted: 1 in the window, 2 now is 2/s
    assert registry.ip_close_delay("PLAINTEXT", "10.0.0.1") > 0
    assert registry.ip_throttled == 2


class ListenerConn(Conn):
    def __init__(self, now: float, listener: str) -> None:
        super().__init__(now)
        self.listener_name = listener


def test_slots_broker_wide_per_listener_and_the_protected_listener() -> None:
    settings = ConnectionSettings(max_connections=3, listener_max_connections={"EXTERNAL": 1},
                                  protected_listener="BROKER", listener_count=3)
    registry = ConnectionRegistry(lambda: settings)
    assert registry.slot_available("EXTERNAL") and registry.slot_available("CLIENT")
    external = ListenerConn(5.0, "EXTERNAL")
    assert registry.admit(external, "10.0.0.1") is None
    assert not registry.slot_available("EXTERNAL")  # its own limit of 1
    assert registry.slot_available("CLIENT")
    clients = [ListenerConn(float(i), "CLIENT") for i in range(2)]
    for c in clients:
        assert registry.admit(c, "10.0.0.2") is None
    assert not registry.slot_available("CLIENT")  # broker-wide 3 reached
    assert not registry.slot_available("CLIENT", pending=0)
    assert registry.slot_available("BROKER")  # never waits for a broker-wide slot
    clients[1].busy = True
    assert registry.admit(ListenerConn(9.0, "BROKER"), "10.0.0.3") is None
    assert clients[0].closed and not clients[1].closed and not external.closed  # the LRU idle one
    assert registry.evicted == 1
    registry.remove(clients[0], "10.0.0.2")
    registry.remove(external, "10.0.0.1")
    assert registry.per_listener == {"CLIENT": 1, "BROKER": 1}
    assert registry.slot_available("EXTERNAL", pending=0)
    assert not registry.slot_available("EXTERNAL", pending=1)


def test_wait_for_slot_returns_when_a_connection_closes() -> None:
    asyncio.run(_wait_for_slot_returns_when_a_connection_closes())


async def _wait_for_slot_returns_when_a_connection_closes() -> None:
    registry = ConnectionRegistry(lambda: ConnectionSettings(max_connections=1))
    held = ListenerConn(0.0, "PLAINTEXT")
    assert registry.admit(held, "10.0.0.1") is None
    waiter = asyncio.ensure_future(registry.wait_for_slot("PLAINTEXT"))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    registry.remove(held, "10.0.0.1")
    await asyncio.wait_for(waiter, 0.5)
    assert registry.blocked == 1
