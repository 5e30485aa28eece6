"""Client quotas: Kafka's precedence of entities and the throttle arithmetic."""

from __future__ import annotations

import json

from moldau.security.principal import KafkaPrincipal
from moldau.security.quotas import (
    CLIENT_ID,
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
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


def test_throttle_keeps_the_rate_and_is_shared_by_an_entity() -> None:
    now = [100.0]
    q = ClientQuotas(clock=lambda: now[0])
    _set(q, {CLIENT_ID: "slow"}, producer_byte_rate=1000)
    anonymous = KafkaPrincipal("User", "ANONYMOUS")
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "slow", 500) == 0  # within the one-window burst
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "slow", 1000) == 500
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "slow", 1000) == 1500
    now[0] += 1.5
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "slow", 1000) == 1000
    assert q.record(PRODUCER_BYTE_RATE, anonymous, "fast", 10**9) == 0  # no quota for this client id
