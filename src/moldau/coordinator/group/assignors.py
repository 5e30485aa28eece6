"""KIP-848 server-side assignors: ``uniform`` and ``range`` (sans-IO, deterministic).

An assignor maps the members' subscriptions over the topics' partitions to a target
assignment. Both here are sticky where it costs nothing: a partition stays with its
current target owner when that owner still subscribes and is within its quota, so
that a membership change moves as few partitions as possible -- which is what keeps
KIP-848's incremental reconciliation cheap.

* ``uniform`` spreads all subscribed partitions as evenly as possible over the
  members (counts differ by at most one when subscriptions are the same; with
  different subscriptions, each partition goes to the least-loaded member that
  wants it).
* ``range`` works topic by topic: the members subscribing to a topic, in member id
  order, each get a contiguous range, the first ``partitions % members`` one more
  (Kafka's range semantics, so co-partitioned topics line up).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

Assignment = dict[uuid.UUID, set[int]]


@dataclass(frozen=True)
class TopicInfo:
    topic_id: uuid.UUID
    name: str
    partitions: int


@dataclass(frozen=True)
class MemberSpec:
    member_id: str
    topics: frozenset[uuid.UUID]
    current: Mapping[uuid.UUID, frozenset[int]]


def _empty(members: list[MemberSpec]) -> dict[str, Assignment]:
    return {m.member_id: {} for m in members}


def range_assign(members: list[MemberSpec], topics: Mapping[uuid.UUID, TopicInfo]) -> dict[str, Assignment]:
    result = _empty(members)
    for topic_id in sorted(topics, key=lambda t: topics[t].name):
        info = topics[topic_id]
        subscribers = sorted(m.member_id for m in members if topic_id in m.topics)
        if not subscribers:
            continue
        base, extra = divmod(info.partitions, len(subscribers))
        start = 0
        for i, member_id in enumerate(subscribers):
            count = base + (1 if i < extra else 0)
            if count:
                result[member_id][topic_id] = set(range(start, start + count))
            start += count
    return result


def uniform_assign(members: list[MemberSpec], topics: Mapping[uuid.UUID, TopicInfo]) -> dict[str, Assignment]:
    result = _empty(members)
    if not members:
        return result
    partitions = [
        (topics[t].name, t, p) for t in topics for p in range(topics[t].partitions)
        if any(t in m.topics for m in members)
    ]
    partitions.sort()
    by_id = {m.member_id: m for m in members}
    homogeneous = len({m.topics for m in members}) == 1
    counts = dict.fromkeys(by_id, 0)
    owner: dict[tuple[uuid.UUID, int], str] = {}
    if homogeneous:
        # Quotas: everyone gets n // k, the first n % k (by current load) one more.
        base, extra = divmod(len(partitions), len(members))
        order = sorted(by_id, key=lambda m: (-sum(len(v) for v in by_id[m].current.values()), m))
        quota = {m: base + (1 if i < extra else 0) for i, m in enumerate(order)}
    else:
        quota = {}
    # Keep current owners first (sticky), within quota for homogeneous groups.
    for member_id in sorted(by_id):
        m = by_id[member_id]
        for topic_id, parts in sorted(m.current.items(), key=lambda kv: str(kv[0])):
            if topic_id not in topics or topic_id not in m.topics:
                continue
            for p in sorted(parts):
                if p >= topics[topic_id].partitions or (topic_id, p) in owner:
                    continue
                if homogeneous and counts[member_id] >= quota[member_id]:
                    break
                owner[(topic_id, p)] = member_id
                counts[member_id] += 1
    if not homogeneous:
        # Undo stickiness that leaves the group unbalanced: drop from the most loaded
        # any partition a clearly less loaded subscriber could take instead.
        changed = True
        while changed:
            changed = False
            for tp, holder in sorted(owner.items(), key=lambda kv: (-counts[kv[1]], str(kv[0][0]), kv[0][1])):
                eligible = [m for m in by_id if tp[0] in by_id[m].topics]
                lightest = min(eligible, key=lambda m: (counts[m], m))
                if counts[holder] - counts[lightest] > 1:
                    del owner[tp]
                    counts[holder] -= 1
                    changed = True
                    break
    for _, topic_id, p in partitions:
        if (topic_id, p) in owner:
            continue
        eligible = [m for m in by_id if topic_id in by_id[m].topics]
        if homogeneous:
            eligible = [m for m in eligible if counts[m] < quota[m]] or eligible
        chosen = min(eligible, key=lambda m: (counts[m], m))
        owner[(topic_id, p)] = chosen
        counts[chosen] += 1
    for (topic_id, p), member_id in owner.items():
        result[member_id].setdefault(topic_id, set()).add(p)
    return result


ASSIGNORS = {"uniform": uniform_assign, "range": range_assign}


def simple_assign(members: list[MemberSpec], topics: Mapping[uuid.UUID, TopicInfo]) -> dict[str, Assignment]:
    """KIP-932's ``simple`` share assignor: a partition may go to several members.

    Topic by topic, over its subscribers in member id order: with no more subscribers
    than partitions, partition ``p`` goes to subscriber ``p % S`` (each partition has
    one member); with more subscribers than partitions, subscriber ``i`` gets partition
    ``i % P``, so every member has work and a partition is shared by several members,
    which share groups allow (records, not partitions, are what members hold).
    """
    result = _empty(members)
    for topic_id in sorted(topics, key=lambda t: topics[t].name):
        count = topics[topic_id].partitions
        subscribers = sorted(m.member_id for m in members if topic_id in m.topics)
        if not subscribers or not count:
            continue
        if len(subscribers) <= count:
            for p in range(count):
                result[subscribers[p % len(subscribers)]].setdefault(topic_id, set()).add(p)
        else:
            for i, member_id in enumerate(subscribers):
                result[member_id][topic_id] = {i % count}
    return result


#: server-side assignors of share groups (``group.share.assignors``)
SHARE_ASSIGNORS = {"simple": simple_assign}
