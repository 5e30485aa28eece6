"""Client quotas: Kafka's precedence of entities and the throttle arithmetic."""

from __future__ import annotations

import json

from moldau.security.principal import KafkaPrincipal
from moldau.security.quotas import (
    CLIENT_ID,
    CONSUMER_BYTE_RATE,
    IP,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    USER,
    ClientQuotas,
    entity_from_key,
    entity_key,
)


def _set(q: ClientQuotas, entity: dict[str, str | None], **values: float) -> None:
    q.apply(entity_key(tuple(entity.items())), json.dumps(values))


def test_precedence_most_specific_entity_wins() -> None:
    q = ClientQuotas()
    _set(q, {CLIENT_ID: None}, producer_byte_rate=1)
    assert q.quota_for(PRODUCER_BYTE_RATE, "alice", "app")[1] == 1  # type: ignore[index]
    _set(q, {CLIENT_ID: "app"}, producer_byte_rate=2)
    assert q.quota_for(PRODUCER_BYTE_RATE, "alice", "app")[1] == 2  # type: ignore[index]
    _set(q, {USER: None}, producer_byte_rate=3)
    assert q.quota_for(PRODUCER_BYTE_RATE, "alice", "app")[1] == 3  # type: ignore[index]
    _set(q, {USER: None, CLIENT_ID: "app"}, producer_byte_rate=4)
    assert q.quota_for(PRODUCER_BYTE_RATE, "alice", "app")[1] == 4  # type: ignore[index]
    _set(q, {USER: "alice"}, producer_byte_rate=5)
    assert q.quota_for(PRODUCER_BYTE_RATE, "alice", "app")[1] == 5  # type: ignore[index]
    _set(q, {USER: "alice", CLIENT_ID: None}, producer_byte_rate=6)
    assert q.quota_for(PRODUCER_BYTE_RATE, "alice", "app")[1] == 6  # type: ignore[index]
    _set(q, {USER: "alice", CLIENT_ID: "app"}, producer_byte_rate=7)
    assert q.quota_for(PRODUCER_BYTE_RATE, "alice", "app")[1] == 7  # type: ignore[index]
    assert q.quota_for(PRODUCER_BYTE_RATE, "bob", "app")[1] == 4  # type: ignore[index]
    assert q.quota_for(CONSUMER_BYTE_RATE, "alice", "app") is None


def test_each_kind_is_looked_up_on_its_own() -> None:
    q = ClientQuotas()
    _set(q, {USER: "alice", CLIENT_ID: "app"}, consumer_byte_rate=10)
    _set(q, {CLIENT_ID: "app"}, producer_byte_rate=20)
    assert q.quota_for(PRODUCER_BYTE_RATE, "alice", "app")[1] == 20  # type: ignore[index]
    assert q.quota_for(CONSUMER_BYTE_RATE, "alice", "app")[1] == 10  # type: ignore[index]


def test_removing_an_entity_and_the_key_round_trip() -> None:
    q = ClientQuotas()
    entity = ((CLIENT_ID, "app"), (USER, None))
    q.apply(entity_key(entity), json.dumps({"producer_byte_rate": 5}))
    assert entity_from_key(entity_key(entity)) == entity
    assert q.active == {PRODUCER_BYTE_RATE}
    q.apply(entity_key(entity), None)
    assert q.active == frozenset() and q.quota_for(PRODUCER_BYTE_RATE, "u", "app") is None


def test_throttle_is_kafkas_sampled_rate_arithmetic_shared_by_an_entity() -> None:
    now = [100.0]
    q = ClientQuotas(clock=lambda: now[0])  # quota.window.num=11 of 1 s
    _set(q, {CLIENT_ID: "slow"}, producer_byte_rate=1000)
    anonymous = KafkaPrincipal("User", "ANONYMOUS")
    # an idle client's rate is measured over at least 10 windows: a 10 kB burst is within
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "slow", 10_000) == 0
    # 11 kB over 10 s is 1.1 kB/s: (1100 - 1000) / 1000 * 10 s
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "slow", 1000) == 1000
    now[0] += 1.5  # 12 kB over 10.5 s: (1142.9 - 1000) / 1000 * 10.5 s
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "slow", 1000) == 1500
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "fast", 10**9) == 0  # no quota for this client id
    now[0] += 20  # idle past the window: forgotten
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "slow", 10_000) == 0


def test_request_time_throttle_is_capped_at_one_window() -> None:
    now = [5.0]
    q = ClientQuotas(clock=lambda: now[0])
    _set(q, {CLIENT_ID: "busy"}, request_percentage=1)
    anonymous = KafkaPrincipal("User", "ANONYMOUS")
    assert q.record(REQUEST_PERCENTAGE, anonymous, "busy", 50) == 1000  # uncapped: 490 s


def test_ip_entities_give_connection_creation_rates() -> None:
    q = ClientQuotas()
    _set(q, {IP: None}, connection_creation_rate=5)
    _set(q, {IP: "::0:1"}, connection_creation_rate=7)
    assert q.ip_connection_rate("10.0.0.1") == 5
    assert q.ip_connection_rate("::1") == 7
    q.apply(entity_key(((IP, None),)), None)
    assert q.ip_connection_rate("10.0.0.1") is None
    assert q.max_value_in_window(PRODUCER_BYTE_RATE, KafkaPrincipal("User", "u"), "c") is None
