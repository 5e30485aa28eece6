"""Replica placement: which brokers hold each new partition, and which one leads it.

Kafka's assignment (``AdminUtils.assignReplicasToBrokers``, what ZooKeeper-era brokers
and ``kafka-reassign-partitions --generate`` use), so operators find their replicas
where Kafka would put them:

* **Without racks** (or when not every broker has one): partition ``p``'s first replica
  -- its preferred leader -- is broker ``(p + start) mod n`` of the sorted broker list,
  so leaders go round the brokers; the other replicas follow it at a shift that grows by
  one every ``n`` partitions, so the followers of one broker's leaders are spread over
  the others rather than always being its neighbour.
* **With racks on every broker**: the same walk over a *rack-alternated* list (the
  first broker of each rack in rack order, then the second of each, ...), so
  consecutive leaders sit on different racks; a further replica is skipped while some
  rack still has none of the partition's replicas, or while some broker has none, so
  ``min(replication factor, racks)`` racks hold every partition.

``start`` and the initial shift are random for a new topic (as Kafka: partition 0 of
every topic does not land on the same broker); CreatePartitions continues the
topic's walk from the broker that holds partition 0's preferred replica.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from moldau.metastore.store import BrokerInfo
from moldau.protocol.errors import ErrorCode, KafkaError


def rack_alternated(brokers: Sequence[BrokerInfo]) -> list[int]:
    """Broker ids taking one from each rack in turn (racks and ids in sorted order)."""
    by_rack: dict[str, list[int]] = {}
    for b in sorted(brokers, key=lambda b: b.broker_id):
        by_rack.setdefault(b.rack or "", []).append(b.broker_id)
    racks = [by_rack[r] for r in sorted(by_rack)]
    out: list[int] = []
    depth = 0
    while len(out) < len(brokers):
        for ids in racks:
            if depth < len(ids):
                out.append(ids[depth])
        depth += 1
    return out


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    return (first + 1 + (shift + j) % (n - 1)) % n


def assign_replicas(
    brokers: Sequence[BrokerInfo],
    num_partitions: int,
    replication_factor: int,
    *,
    first_partition: int = 0,
    start_index: int | None = None,
    shift: int | None = None,
    rng: random.Random | None = None,
) -> dict[int, list[int]]:
    """Replica lists (preferred leader first) for partitions ``first_partition`` on.

    Raises INVALID_REPLICATION_FACTOR when there are fewer brokers than replicas.
    """
    n = len(brokers)
    if replication_factor <= 0:
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
    if replication_factor > n:
        raise KafkaError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"Unable to replicate the partition {replication_factor} time(s): "
            f"The target replication factor of {replication_factor} cannot be reached "
            f"because only {n} broker(s) are registered.",
        )
    rng = rng or random.Random()
    start = rng.randrange(n) if start_index is None else start_index
    next_shift = rng.randrange(n) if shift is None else shift
    rack_of = {b.broker_id: b.rack for b in brokers}
    racks = set(rack_of.values())
    rack_aware = None not in racks and "" not in racks and len(racks) > 1
    ordered = rack_alternated(brokers) if rack_aware else sorted(rack_of)
    result: dict[int, list[int]] = {}
    for p in range(first_partition, first_partition + num_partitions):
        if p > 0 and p % n == 0:
            next_shift += 1
        first = (p + start) % n
        replicas = [ordered[first]]
        if not rack_aware:
            replicas += [ordered[_replica_index(first, next_shift, j, n)] for j in range(replication_factor - 1)]
        else:
            used_racks = {rack_of[replicas[0]]}
            k = 0
            while len(replicas) < replication_factor:
                candidate = ordered[_replica_index(first, next_shift * len(racks), k, n)]
                k += 1
                rack = rack_of[candidate]
                if (rack not in used_racks or len(used_racks) == len(racks)) and (
                    candidate not in replicas or len(replicas) == n
                ):
                    replicas.append(candidate)
                    used_racks.add(rack)
        result[p] = replicas
    return result


def continuation(brokers: Sequence[BrokerInfo], partition0_replicas: Sequence[int]) -> tuple[int | None, int | None]:
    """(start index, shift) that continue a topic's placement for CreatePartitions:
    Kafka passes the position of partition 0's preferred replica in the broker list as
    its fixed start index, which also serves as the replica shift."""
    if not partition0_replicas:
        return None, None
    rack_of = {b.broker_id: b.rack for b in brokers}
    racks = set(rack_of.values())
    rack_aware = None not in racks and "" not in racks and len(racks) > 1
    ordered = rack_alternated(brokers) if rack_aware else sorted(rack_of)
    leader = partition0_replicas[0]
    start = ordered.index(leader) if leader in ordered else None
    return start, start


def validate_assignment(replicas: Sequence[int], registered: set[int], replication_factor: int | None = None) -> None:
    """Kafka's validateManualPartitionAssignment: a non-empty list of distinct
    registered brokers, as long as the others of the same request."""
    if not replicas:
        raise KafkaError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes an empty replica list."
        )
    previous = None
    for broker_id in sorted(replicas):
        if broker_id not in registered:
            raise KafkaError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes broker {broker_id}, but no such broker is registered.",
            )
        if broker_id == previous:
            raise KafkaError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes the broker {broker_id} more than once.",
            )
        previous = broker_id
    if replication_factor is not None and len(replicas) != replication_factor:
        raise KafkaError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"The manual partition assignment includes a partition with {len(replicas)} replica(s), but "
            f"this is not consistent with previous partitions, which have {replication_factor} replica(s).",
        )
