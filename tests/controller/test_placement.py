"""Replica placement: Kafka's walk spreads leaders and replicas over brokers and racks."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from moldau.controller.placement import assign_replicas, continuation, rack_alternated
from moldau.metastore.store import BrokerInfo
from moldau.protocol.errors import ErrorCode, KafkaError


def brokers(racks: dict[int, str | None]) -> list[BrokerInfo]:
    return [BrokerInfo(i, "h", 9000 + i, rack) for i, rack in racks.items()]


def test_kafka_rack_unaware_example() -> None:
    # Kafka's AdminUtils documentation example: 5 brokers, 10 partitions, RF 3,
    # start index 0, shift 0.
    assigned = assign_replicas(brokers({i: None for i in range(5)}), 10, 3, start_index=0, shift=0)
    assert assigned[0] == [0, 1, 2]
    assert assigned[4] == [4, 0, 1]
    assert assigned[5] == [0, 2, 3]  # the shift grows every n partitions
    assert assigned[9] == [4, 1, 2]


def test_rack_alternated_list_takes_one_broker_per_rack_in_turn() -> None:
    racks = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    assert rack_alternated(brokers(racks)) == [0, 3, 1, 5, 4, 2]


@pytest.mark.parametrize("seed", range(20))
def test_rack_aware_places_every_partition_on_distinct_racks_and_spreads_leaders(seed: int) -> None:
    racks = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    assigned = assign_replicas(brokers(racks), 12, 3, rng=random.Random(seed))
    for replicas in assigned.values():
        assert len(set(replicas)) == 3
        assert {racks[r] for r in replicas} == {"a", "b", "c"}
    assert Counter(r[0] for r in assigned.values()) == {b: 2 for b in racks}
    assert Counter(r for rs in assigned.values() for r in rs) == {b: 6 for b in racks}


def test_more_replicas_than_racks_still_uses_every_rack_then_distinct_brokers() -> None:
    racks = {1: "a", 2: "a", 3: "b", 4: "b"}
    for replicas in assign_replicas(brokers(racks), 8, 3, rng=random.Random(1)).values():
        assert len(set(replicas)) == 3 and {racks[r] for r in replicas} == {"a", "b"}


def test_replication_factor_above_brokers_is_invalid_replication_factor() -> None:
    with pytest.raises(KafkaError) as raised:
        assign_replicas(brokers({1: None, 2: None}), 1, 3)
    assert raised.value.code == ErrorCode.INVALID_REPLICATION_FACTOR


def test_create_partitions_continues_from_partition_zero_leader() -> None:
    members = brokers({1: None, 2: None, 3: None})
    first = assign_replicas(members, 3, 2, start_index=1, shift=0)
    start, _ = continuation(members, first[0])
    more = assign_replicas(members, 3, 2, first_partition=3, start_index=start, shift=0)
    leaders = [first[p][0] for p in range(3)] + [more[p][0] for p in range(3, 6)]
    assert Counter(leaders) == {1: 2, 2: 2, 3: 2}
