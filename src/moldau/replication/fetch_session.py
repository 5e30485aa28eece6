"""Incremental fetch sessions (KIP-227): what a fetcher asked for last, so it need not
ask again, and what it was last told, so unchanged partitions need not be told again.

Theory of operation, as Kafka's FetchSession/FetchManager. A fetch request carries a
session id and an epoch:

* epoch -1 (FINAL): a full request answered without a session (librdkafka, aiokafka,
  Moldau's own followers). A session id with it closes that session.
* epoch 0 (INITIAL): a full request that asks for a session. The answer names a new
  session holding every requested partition (its fetch offset and limits, and the high
  watermark and log start offset just answered), or id 0 when the cache has no room.
  A session id with it closes that session first.
* epoch N > 0 with a session id: an incremental request. It names only the partitions
  whose fetch parameters changed (added or updated in the session) and the partitions
  to forget; every partition of the session is read, and the answer carries only those
  with records, a changed high watermark or log start offset, or an error. A session
  left empty is closed and the request answered session-less. An unknown id is
  FETCH_SESSION_ID_NOT_FOUND, an epoch other than the session's INVALID_FETCH_SESSION_EPOCH,
  a session opened with topic ids (v13+) used without them, or the reverse,
  FETCH_SESSION_TOPIC_ID_ERROR; each answered at once with session id 0.

The session's epoch moves on when an incremental request is accepted; an answer whose
session moved on again meanwhile (the same epoch sent twice, on two connections) is
INVALID_FETCH_SESSION_EPOCH. Partitions that returned records move to the end of the
session's order, so a response size limit serves every partition in turn.

The cache holds at most ``max.incremental.fetch.session.cache.slots`` sessions. When it
is full, a new session takes the place of the least recently used one if that one has
been idle for two minutes; otherwise of the smallest session older than two minutes
(a follower's, "privileged", only for another follower), if the new one is at least as
large; otherwise no session is made.

Moldau bounds what sessions hold, which Kafka does not: at most
:data:`MAX_CACHED_PARTITIONS` partitions over all sessions (about 300 bytes each). A
session that would pass it is not made (id 0: the client goes on with full fetches, as
when the cache is full), and an incremental request that would grow a session past it
closes that session (FETCH_SESSION_ID_NOT_FOUND: the client starts over with a full
fetch). Real consumers stay far below it (a broker hosts at most
``moldau.max.broker.partitions``); it keeps clients naming made-up partitions from
making the broker hold memory beyond the requests they send.

Nothing here does I/O; the fetch handler calls it on the event loop, so no locks.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
#: Kafka's MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS
EVICTION_MS = 120_000
#: partitions all sessions may hold together (see above; Moldau's own bound)
MAX_CACHED_PARTITIONS = 200_000


def next_epoch(epoch: int) -> int:
    if epoch < 0:
        return FINAL_EPOCH
    return 1 if epoch == 0x7FFFFFFF else epoch + 1


class CachedPartition:
    """One partition of a session: its last fetch parameters (named as the request's
    partition fields, so the fetch path reads it like one) and what it was last told."""

    __slots__ = ("topic", "topic_id", "partition", "fetch_offset", "partition_max_bytes", "current_leader_epoch",
                 "log_start_offset", "last_fetched_epoch", "high_watermark", "local_log_start_offset")

    def __init__(self, topic: str | None, topic_id: uuid.UUID | None, p: Any) -> None:
        self.topic = topic
        self.topic_id = topic_id
        self.partition = p.partition
        self.high_watermark = -1
        self.local_log_start_offset = -1
        self.update(p)

    def update(self, p: Any) -> None:
        self.fetch_offset = p.fetch_offset
        self.partition_max_bytes = p.partition_max_bytes
        self.current_leader_epoch = p.current_leader_epoch
        self.log_start_offset = p.log_start_offset
        self.last_fetched_epoch = p.last_fetched_epoch

    def must_respond(self, data: Any, has_records: bool) -> bool:
        """Whether an incremental answer must carry this partition; remembers what it tells."""
        respond = has_records
        if self.high_watermark != data.high_watermark:
            respond = True
            self.high_watermark = data.high_watermark
        if self.local_log_start_offset != data.log_start_offset:
            respond = True
            self.local_log_start_offset = data.log_start_offset
        if data.error_code:
            self.high_watermark = -1  # so the partition is sent again once the error clears
            respond = True
        return respond


class SessionTopic:
    """Consecutive partitions of one topic in a session's order, shaped as a request's
    topic (``topic``/``topic_id`` and ``partitions``) for the fetch path."""

    __slots__ = ("topic", "topic_id", "partitions")

    def __init__(self, topic: str | None, topic_id: uuid.UUID | None, partitions: list[CachedPartition]) -> None:
        self.topic = topic
        self.topic_id = topic_id
        self.partitions = partitions


class FetchSession:
    __slots__ = ("id", "epoch", "privileged", "uses_topic_ids", "partitions", "created_ms", "last_used_ms")

    def __init__(self, session_id: int, privileged: bool, uses_topic_ids: bool,
                 partitions: dict[tuple[Any, int], CachedPartition], now_ms: int) -> None:
        self.id = session_id
        self.epoch = next_epoch(INITIAL_EPOCH)
        self.privileged = privileged
        self.uses_topic_ids = uses_topic_ids
        self.partitions = partitions
        self.created_ms = now_ms
        self.last_used_ms = now_ms

    def update(self, topics: Iterable[Any], forgotten: Iterable[Any]) -> None:
        """Add or update the partitions an incremental request names, then forget those
        it lists as forgotten."""
        parts = self.partitions
        ids = self.uses_topic_ids
        for topic in topics:
            key = topic.topic_id if ids else topic.topic
            for p in topic.partitions:
                cached = parts.get((key, p.partition))
                if cached is None:
                    parts[(key, p.partition)] = CachedPartition(None if ids else topic.topic, topic.topic_id if ids else None, p)
                else:
                    cached.update(p)
        for topic in forgotten:
            key = topic.topic_id if ids else topic.topic
            for index in topic.partitions:
                parts.pop((key, index), None)

    def topics(self) -> list[SessionTopic]:
        """Every partition of the session, grouped by consecutive topic, in session order."""
        out: list[SessionTopic] = []
        last_key: Any = object()
        current: list[CachedPartition] = []
        ids = self.uses_topic_ids
        for (key, _index), cached in self.partitions.items():
            if key != last_key:
                current = []
                out.append(SessionTopic(None if ids else key, key if ids else None, current))
                last_key = key
            current.append(cached)
        return out

    def moved_to_end(self, cached: Iterator[CachedPartition]) -> None:
        """Partitions that returned records go last, so every partition is served in turn."""
        parts = self.partitions
        for c in cached:
            key = (c.topic_id if self.uses_topic_ids else c.topic, c.partition)
            parts[key] = parts.pop(key)


class FetchSessionCache:
    """At most ``max_entries`` sessions by id, evicted as the module docstring says."""

    def __init__(self, max_entries: int, eviction_ms: int = EVICTION_MS,
                 max_partitions: int = MAX_CACHED_PARTITIONS) -> None:
        self.max_entries = max_entries
        self.eviction_ms = eviction_ms
        self.max_partitions = max_partitions
        self.sessions: dict[int, FetchSession] = {}
        self.evictions = 0

    def get(self, session_id: int) -> FetchSession | None:
        return self.sessions.get(session_id)

    def remove(self, session_id: int) -> FetchSession | None:
        return self.sessions.pop(session_id, None)

    def touch(self, session: FetchSession, now_ms: int) -> None:
        session.last_used_ms = now_ms

    @property
    def cached_partitions(self) -> int:
        return sum(len(s.partitions) for s in self.sessions.values())

    def over_budget(self, extra: int = 0) -> bool:
        """Whether the sessions (with ``extra`` partitions more) pass ``max_partitions``;
        asked only when a session is made or grows, so the sum is rarely taken."""
        return self.cached_partitions + extra > self.max_partitions

    def maybe_create(self, now_ms: int, privileged: bool, uses_topic_ids: bool,
                     partitions: dict[tuple[Any, int], CachedPartition]) -> int:
        """A new session's id, or INVALID_SESSION_ID when there is no room for it."""
        if self.max_entries <= 0 or self.over_budget(len(partitions)):
            return INVALID_SESSION_ID
        if len(self.sessions) >= self.max_entries and not self._evict(privileged, len(partitions), now_ms):
            return INVALID_SESSION_ID
        session_id = INVALID_SESSION_ID
        while session_id == INVALID_SESSION_ID or session_id in self.sessions:
            session_id = random.randint(1, 0x7FFFFFFE)
        self.sessions[session_id] = FetchSession(session_id, privileged, uses_topic_ids, partitions, now_ms)
        return session_id

    def _evict(self, privileged: bool, size: int, now_ms: int) -> bool:
        stale = min(self.sessions.values(), key=lambda s: (s.last_used_ms, s.id))
        if now_ms - stale.last_used_ms > self.eviction_ms:
            del self.sessions[stale.id]
            self.evictions += 1
            return True
        old = [s for s in self.sessions.values() if now_ms - s.created_ms > self.eviction_ms
               or (privileged and not s.privileged)]
        if not old:
            return False
        victim = min(old, key=lambda s: (s.privileged, len(s.partitions), s.id))
        if (privileged, size, 0) < (victim.privileged, len(victim.partitions), victim.id):
            return False
        del self.sessions[victim.id]
        self.evictions += 1
        return True
