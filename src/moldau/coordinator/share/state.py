"""Durable share-partition state in ``__share_group_state``, in Kafka's record format.

Theory of operation: Kafka's share coordinator keeps each share-partition's state in
the compacted internal topic ``__share_group_state``, in partition
``abs(hashCode("group:topicId:partition")) % share.coordinator.state.topic.num.partitions``,
as ShareSnapshot records (key type 0: group id, topic id, partition; value version 0:
snapshot epoch, state epoch, leader epoch, start offset and the state batches
``(first, last, delivery state, delivery count)``). Moldau writes the same records:
after every request that changed a share-partition, one full snapshot of it, appended
before the request is answered, so an acknowledgement that was answered survives a
kill -9 (the append is in the page cache like any produce; ``flush.messages`` and the
replication of the state partition apply as to every partition). Snapshots stay small
because the state is kept in ranges (:mod:`.partition`), never per record. Kafka's
ShareUpdate records (deltas between snapshots) are read at load but not written.

At start, and whenever this broker becomes the leader of a state partition, that
partition is read back in a worker thread (the latest snapshot per key wins; a
tombstone deletes); share fetches wait until it is loaded.

This broker is the share coordinator of the share-partitions whose state partition it
leads: it answers Kafka's Initialize/Read/Write/DeleteShareGroupState from other
brokers (:mod:`moldau.handlers.share_state`) from the same in-memory view, appending
a full ShareSnapshot for each write. A share-partition whose data partition this
broker leads but whose state partition another broker leads is persisted through that
coordinator (:mod:`.remote`): read before it is first served here, written before each
request that changed it is answered.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import time
import uuid
from typing import TYPE_CHECKING, Any

from moldau.coordinator.group.hashing import partition_for
from moldau.coordinator.internal_topic import InternalTopicCreator, Unreadable, read_partition
from moldau.coordinator.share.remote import LocalNow, RemoteShareState
from moldau.log_throttle import ThrottledLog
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.records import RecordInput, build_batch

if TYPE_CHECKING:
    from moldau.coordinator.share.partition import SharePartition

STATE_TOPIC = "__share_group_state"
SNAPSHOT_KEY = 0
UPDATE_KEY = 1

log = logging.getLogger("moldau.coordinator.share")
#: every request may hit it in a cluster (see the module docstring): at most 10 lines a minute
unpersisted_log = ThrottledLog(log, "share-partition states not persisted")
#: the codes after which a share-partition leader must drop its in-memory state
FENCED = frozenset({ErrorCode.FENCED_STATE_EPOCH, ErrorCode.FENCED_LEADER_EPOCH})

#: (start offset, state epoch, batches) as stored
StoredState = tuple[int, int, list[tuple[int, int, int, int]]]


def _uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_key(group_id: str, topic_id: uuid.UUID, partition: int, kind: int = SNAPSHOT_KEY) -> bytes:
    g = group_id.encode()
    return struct.pack(">hh", kind, len(g)) + g + topic_id.bytes + struct.pack(">i", partition)


def decode_key(data: bytes) -> tuple[int, str, uuid.UUID, int]:
    kind, n = struct.unpack_from(">hh", data, 0)
    group = data[4:4 + n].decode()
    topic_id = uuid.UUID(bytes=bytes(data[4 + n:20 + n]))
    (partition,) = struct.unpack_from(">i", data, 20 + n)
    return kind, group, topic_id, partition


def encode_snapshot(snapshot_epoch: int, state_epoch: int, leader_epoch: int, start: int,
                    batches: list[tuple[int, int, int, int]]) -> bytes:
    """ShareSnapshotValue version 0 (flexible)."""
    parts = [struct.pack(">hHiiq", 0, snapshot_epoch & 0xFFFF, state_epoch, leader_epoch, start), _uvarint(len(batches) + 1)]
    for first, last, state, count in batches:
        parts.append(struct.pack(">qqbh", first, last, state, count) + b"\x00")
    parts.append(b"\x00")
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        s = struct.Struct(fmt)
        out = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return out

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def decode_value(kind: int, data: bytes) -> StoredState:
    """A ShareSnapshotValue or ShareUpdateValue (version 0) as (start, state epoch, batches)."""
    r = _Reader(data, 2)
    if kind == SNAPSHOT_KEY:
        _snap, state_epoch, _leader, start = r.unpack(">Hiiq")
    else:
        _snap, _leader, start = r.unpack(">Hiq")
        state_epoch = -1
    batches = []
    for _ in range(r.uvarint() - 1):
        first, last, state, count = r.unpack(">qqbh")
        r.skip_tags()
        batches.append((first, last, state, count))
    return start, state_epoch, batches


def merge_batches(old: list[tuple[int, int, int, int]], start: int,
                  new: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Kafka's merge of a write (or a ShareUpdate) into stored state batches: the new
    batches replace the offsets they cover (an old batch they overlap in part keeps the
    rest), and nothing below the start offset stays."""
    kept = []
    for first, last, state, count in old:
        pieces = [(max(first, start), last)]
        for n_first, n_last, _, _ in new:
            pieces = [p for f, la in pieces for p in ((f, min(la, n_first - 1)), (max(f, n_last + 1), la))
                      if p[0] <= p[1]]
        kept.extend((f, la, state, count) for f, la in pieces if f <= la)
    return sorted(kept + [b for b in new if b[1] >= start])


def kafka_uuid_text(value: uuid.UUID) -> str:
    """Kafka's Uuid.toString(): URL-safe base64 of the 16 bytes, unpadded."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def coordinator_key(group_id: str, topic_id: uuid.UUID, partition: int) -> str:
    """Kafka's share coordinator key (SharePartitionKey.asCoordinatorKey): what
    FindCoordinator key type 2 carries and what picks the state partition."""
    return f"{group_id}:{kafka_uuid_text(topic_id)}:{partition}"


class ShareCoordinatorKeys:
    """FindCoordinator key type 2 (SHARE): ``group:topicId:partition`` keys, shaped as
    the group and transaction coordinators are for the FindCoordinator handler."""

    topic = STATE_TOPIC

    def __init__(self, persister: ShareStatePersister) -> None:
        self.persister = persister
        self.log = log

    async def ensure_topic(self) -> None:
        await self.persister._creator.ensure()

    @staticmethod
    def parse(key: str) -> tuple[str, uuid.UUID, int] | None:
        """(group, topic id, partition) of a key, or None if it is not one. The topic id
        is Kafka's base64 text form (Uuid.toString) or the hex one."""
        group, sep, rest = key.rpartition(":")
        group, sep2, topic = group.rpartition(":")
        if not sep or not sep2 or not group or not rest.lstrip("-").isdigit():
            return None
        try:
            if len(topic) == 22:
                topic_id = uuid.UUID(bytes=base64.urlsafe_b64decode(topic + "=="))
            else:
                topic_id = uuid.UUID(topic)
        except ValueError:
            return None
        return group, topic_id, int(rest)

    def partition_of(self, key: str) -> int:
        """As Kafka: the hash of the key's text, as sent."""
        return partition_for(key, self.persister.num_partitions)


class ShareStatePersister:
    """Writes and loads share-partition snapshots (see the module docstring)."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.states: dict[tuple[str, uuid.UUID, int], StoredState] = {}
        self._snapshot_epochs: dict[tuple[str, uuid.UUID, int], int] = {}
        self._loading: dict[int, asyncio.Future[None]] = {}
        self._creator = InternalTopicCreator(
            STATE_TOPIC, lambda: broker.topics, lambda: broker.controller, self._plan_topic, log
        )
        self._written: dict[tuple[str, str, int], int] = {}
        self._dirty: dict[tuple[str, str, int], SharePartition] = {}
        #: requests to the share coordinators on other brokers
        self.remote = RemoteShareState(
            broker, self.coordinator_of, lambda index: self.coordinator_error(index) is ErrorCode.NONE)
        #: read from a remote coordinator, waiting for the share-partition to be made
        self._fetched: dict[tuple[str, str, int], StoredState] = {}
        #: remote writes: one at a time per share-partition, the version last written
        self._remote_locks: dict[tuple[str, str, int], asyncio.Lock] = {}
        self._remote_written: dict[tuple[str, str, int], tuple[SharePartition, int]] = {}
        #: remote writes and deletes under way (every request's persist waits for them all:
        #: another request's flush may have sent this one's changes)
        self._remote_pending: set[asyncio.Future[Any]] = set()
        #: as coordinator: the newest leader epoch of each share-partition's leader
        self._leader_epochs: dict[tuple[str, uuid.UUID, int], int] = {}
        #: what FindCoordinator key type 2 asks
        self.coordinator_keys = ShareCoordinatorKeys(self)

    # -- topic ----------------------------------------------------------------------

    def _plan_topic(self) -> Any:
        config = self.broker.config
        return self.broker.controller.plan_topic(
            STATE_TOPIC,
            config.int("share.coordinator.state.topic.num.partitions"),
            min(config.int("share.coordinator.state.topic.replication.factor"),
                len(self.broker.controller.live_brokers())),
            {"cleanup.policy": "compact", "compression.type": "producer"},
        )

    @property
    def num_partitions(self) -> int:
        topic = self.broker.topics.get(STATE_TOPIC)
        if topic is not None:
            return len(topic.partitions)
        return self.broker.config.int("share.coordinator.state.topic.num.partitions")

    def partition_of(self, group_id: str, topic_id: uuid.UUID, partition: int) -> int:
        return partition_for(coordinator_key(group_id, topic_id, partition), self.num_partitions)

    def coordinator_of(self, index: int) -> int | None:
        """The live broker leading state partition ``index`` (the share coordinator)."""
        record = self.broker.topics.get(STATE_TOPIC)
        state = None if record is None else record.partitions.get(index)
        if state is None or state.leader < 0:
            return None
        if not any(b.broker_id == state.leader for b in self.broker.live_brokers()):
            return None
        return int(state.leader)

    def leads(self, index: int) -> bool:
        partition = self.broker.partition(STATE_TOPIC, index)
        return partition is not None and partition.is_leader

    def coordinator_error(self, index: int) -> ErrorCode:
        """Whether this broker can serve state partition ``index`` now, as Kafka's share
        coordinator answers: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or NONE."""
        if not self.leads(index):
            return ErrorCode.NOT_COORDINATOR
        loading = self._loading.get(index)
        if loading is None or not loading.done():
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    async def ready(self) -> None:
        """Create the topic on first use; wait for the loads under way."""
        await self._creator.ensure()
        pending = [f for f in self._loading.values() if not f.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- loading ----------------------------------------------------------------------

    def start(self) -> None:
        topic = self.broker.topics.get(STATE_TOPIC)
        if topic is None:
            return
        for index in topic.partitions:
            partition = self.broker.partition(STATE_TOPIC, index)
            if partition is not None and partition.is_leader:
                self._load(index)

    def leadership_changed(self, topic: str, index: int, is_leader: bool) -> None:
        if topic != STATE_TOPIC:
            if not is_leader:  # what we knew of share-partitions we no longer lead is stale
                for table in (self._fetched, self._remote_written):
                    for key in [k for k in table if k[1] == topic and k[2] == index]:
                        del table[key]
            return
        if is_leader:
            self._load(index)
        else:  # another broker coordinates these now: our view would go stale
            self._loading.pop(index, None)
            for key in [k for k in self.states if self.partition_of(*k) == index]:
                del self.states[key]

    def topic_removed(self, name: str) -> None:
        """A user topic's share-partition states are dropped from memory (the records
        stay in the log until a tombstone or compaction); nothing else to do here."""
        record_ids = {k for k in self.states if self.broker.topic_names_by_id.get(k[1]) == name}
        for key in record_ids:
            self.states.pop(key, None)

    def _load(self, index: int) -> None:
        self._loading[index] = asyncio.ensure_future(self._load_partition(index))

    async def _load_partition(self, index: int) -> None:
        partition = self.broker.partition(STATE_TOPIC, index)
        if partition is None:
            return
        started = time.perf_counter()
        skipped = Unreadable()
        records = await asyncio.to_thread(read_partition, partition.log, partition.log.log_end_offset, skipped)
        for key_bytes, value_bytes, _pid, _control in records:
            if key_bytes is None:
                continue
            try:
                kind, group, topic_id, p = decode_key(key_bytes)
                if kind not in (SNAPSHOT_KEY, UPDATE_KEY):
                    continue
                key = (group, topic_id, p)
                if value_bytes is None:
                    self.states.pop(key, None)
                    continue
                start, state_epoch, batches = decode_value(kind, value_bytes)
                if kind == UPDATE_KEY and key in self.states:
                    old_start, old_epoch, old_batches = self.states[key]
                    state_epoch = old_epoch
                    batches = merge_batches(old_batches, start, batches)
                self.states[key] = (start, max(state_epoch, 0), batches)
            except Exception as exc:
                skipped.record(repr(exc))
        if skipped:
            log.warning("%s-%d: skipped what could not be read: %s", STATE_TOPIC, index, skipped)
        log.info("loaded %d record(s) of %s-%d in %.0f ms", len(records), STATE_TOPIC, index,
                 (time.perf_counter() - started) * 1000)

    async def prepare(self, group_id: str, topic: str, index: int, timeout: float | None = None) -> None:
        """Before a share-partition is made here: its state, read from its share
        coordinator when that is another broker (a new leader goes on where the old
        one stopped). Raises KafkaError when the coordinator cannot answer within
        ``timeout`` seconds (``request.timeout.ms`` by default)."""
        key = (group_id, topic, index)
        record = self.broker.topics.get(topic)
        if record is None or key in self.broker.share_manager.partitions or key in self._fetched:
            return
        sidx = self.partition_of(group_id, record.topic_id, index)
        if self.leads(sidx):
            loading = self._loading.get(sidx)
            if loading is not None and not loading.done():
                await asyncio.gather(loading, return_exceptions=True)
            return
        try:
            start, state_epoch, batches = await self.remote.read(
                sidx, group_id, record.topic_id, index, self._leader_epoch(topic, index), timeout)
        except LocalNow:
            return  # the state partition is ours now: load_for reads our view
        if self.leads(sidx) or key in self.broker.share_manager.partitions:
            return  # the state partition came here meanwhile (or another fetch made it)
        if start >= 0:
            self._fetched[key] = (start, max(state_epoch, 0), batches)

    async def remote_summary(self, group_id: str, topic: str, index: int) -> tuple[int, int] | None:
        """(start offset, delivery complete count) from the share coordinator when that is
        another broker (ReadShareGroupStateSummary), else None: the local view answers."""
        record = self.broker.topics.get(topic)
        if record is None or self.broker.topics.get(STATE_TOPIC) is None:
            return None
        sidx = self.partition_of(group_id, record.topic_id, index)
        if self.leads(sidx):
            return None
        try:
            return await self.remote.summary(sidx, group_id, record.topic_id, index)
        except LocalNow:
            return None

    def load_for(self, key: tuple[str, str, int]) -> StoredState | None:
        """The state a new share-partition starts from (the manager's ``load_state``)."""
        fetched = self._fetched.pop(key, None)
        if fetched is not None:
            return fetched
        return self.stored(*key)

    def stored(self, group_id: str, topic: str, index: int) -> StoredState | None:
        record = self.broker.topics.get(topic)
        if record is None:
            return None
        return self.states.get((group_id, record.topic_id, index))

    # -- writing ----------------------------------------------------------------------

    def changed(self, key: tuple[str, str, int], sp: SharePartition) -> None:
        """A share-partition changed: written at the end of the request (:meth:`flush`)."""
        if self._written.get(key) != sp.version:
            self._dirty[key] = sp

    async def persist(self) -> None:
        """:meth:`flush`, then wait for the writes to other brokers' coordinators."""
        self.flush()
        if self._remote_pending:
            await asyncio.gather(*list(self._remote_pending), return_exceptions=True)

    def flush(self) -> None:
        """Append one snapshot per changed share-partition, grouped by state partition;
        start the writes of those another broker coordinates (:meth:`persist` waits)."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for (group_id, topic, index), sp in dirty.items():
            record = self.broker.topics.get(topic)
            if record is None:
                continue
            skey = (group_id, record.topic_id, index)
            sidx = self.partition_of(*skey)
            if not self.leads(sidx) and self.broker.topics.get(STATE_TOPIC) is not None:
                self._written[(group_id, topic, index)] = sp.version
                self._start_remote(self._write_remote((group_id, topic, index), record.topic_id, sidx, sp))
                continue
            epoch = self._snapshot_epochs.get(skey, -1) + 1
            self._snapshot_epochs[skey] = epoch
            batches = sp.state_batches()
            value = encode_snapshot(epoch, sp.state_epoch, self._leader_epoch(topic, index), sp.start_offset, batches)
            self.states[skey] = (sp.start_offset, sp.state_epoch, batches)
            by_partition.setdefault(self.partition_of(*skey), []).append((encode_key(*skey), value))
            self._written[(group_id, topic, index)] = sp.version
        for index, records in by_partition.items():
            self._append(index, records)

    def _start_remote(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._remote_pending.add(task)
        task.add_done_callback(self._remote_pending.discard)

    async def _write_remote(self, key: tuple[str, str, int], topic_id: uuid.UUID, sidx: int,
                            sp: SharePartition) -> None:
        """WriteShareGroupState of ``sp`` as it is when this write's turn comes (one
        write at a time per share-partition: a later one covers the ones queued)."""
        wanted = sp.version
        lock = self._remote_locks.setdefault(key, asyncio.Lock())
        async with lock:
            last = self._remote_written.get(key)
            if (last is not None and last[0] is sp and last[1] >= wanted) \
                    or self.broker.share_manager.partitions.get(key) is not sp:
                return  # a later write covered it, or the share-partition was dropped
            version, batches = sp.version, sp.state_batches()
            leader_epoch = self._leader_epoch(key[1], key[2])
            try:
                code = await self.remote.write(sidx, key[0], topic_id, key[2], sp.state_epoch,
                                               leader_epoch, sp.start_offset, batches)
            except LocalNow:
                code = self.serve_write(key[0], topic_id, key[2], sp.state_epoch, leader_epoch,
                                        sp.start_offset, batches)
            if code is ErrorCode.NONE:
                self._remote_written[key] = (sp, version)
            elif code in FENCED:
                log.warning("share-partition %s fenced by its coordinator (%s): dropped", key, code.name)
                self.broker.share_manager.drop(lambda k: k == key)
            else:
                unpersisted_log("%s: WriteShareGroupState to the coordinator of %s-%d failed: %s",
                                key, STATE_TOPIC, sidx, code.name)

    async def _delete_remote(self, sidx: int, group_id: str, topic_id: uuid.UUID, index: int) -> None:
        try:
            code = await self.remote.delete(sidx, group_id, topic_id, index)
        except LocalNow:
            code = self.serve_delete(group_id, topic_id, index)
        if code is not ErrorCode.NONE:
            unpersisted_log("%s/%s-%d: DeleteShareGroupState failed: %s", group_id, topic_id, index, code.name)

    def delete(self, group_id: str, keys: list[tuple[str, int]]) -> None:
        """Tombstones for a group's share-partitions (DeleteGroups, DeleteShareGroupOffsets)."""
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for topic, index in keys:
            record = self.broker.topics.get(topic)
            if record is None:
                continue
            skey = (group_id, record.topic_id, index)
            self.states.pop(skey, None)
            self._written.pop((group_id, topic, index), None)
            self._fetched.pop((group_id, topic, index), None)
            sidx = self.partition_of(*skey)
            if not self.leads(sidx) and self.broker.topics.get(STATE_TOPIC) is not None:
                self._start_remote(self._delete_remote(sidx, group_id, record.topic_id, index))
                continue
            by_partition.setdefault(self.partition_of(*skey), []).append((encode_key(*skey), None))
        for index, records in by_partition.items():
            self._append(index, records)

    def keys_of(self, group_id: str) -> list[tuple[str, int]]:
        names = self.broker.topic_names_by_id
        return [(names[t], p) for (g, t, p) in self.states if g == group_id and t in names]

    def _leader_epoch(self, topic: str, index: int) -> int:
        partition = self.broker.partition(topic, index)
        return getattr(partition, "leader_epoch", 0) if partition is not None else -1

    def _append(self, index: int, records: list[tuple[bytes, bytes | None]]) -> ErrorCode:
        partition = self.broker.partition(STATE_TOPIC, index)
        if partition is None or not partition.is_leader:
            unpersisted_log("%s-%d is not led here: share-partition state not persisted", STATE_TOPIC, index)
            return ErrorCode.NOT_COORDINATOR
        now = int(time.time() * 1000)
        batch = build_batch([RecordInput(k, v, (), now) for k, v in records])
        try:
            partition.append_as_leader(memoryview(bytearray(batch)), -1, now)
        except KafkaError as exc:
            log.warning("could not write to %s-%d: %s", STATE_TOPIC, index, exc)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return ErrorCode.NONE

    # -- the share coordinator: requests from other brokers' persisters -------------------

    def _check(self, skey: tuple[str, uuid.UUID, int], leader_epoch: int | None) -> ErrorCode:
        code = self.coordinator_error(self.partition_of(*skey))
        if code is not ErrorCode.NONE:
            return code
        if leader_epoch is not None and leader_epoch >= 0:
            if leader_epoch < self._leader_epochs.get(skey, -1):
                return ErrorCode.FENCED_LEADER_EPOCH
            self._leader_epochs[skey] = leader_epoch
        return ErrorCode.NONE

    def serve_read(self, group_id: str, topic_id: uuid.UUID, partition: int,
                   leader_epoch: int | None) -> tuple[ErrorCode, StoredState]:
        """ReadShareGroupState: the stored state, start offset -1 when never initialized
        (None for the leader epoch: a summary read, which fences nothing)."""
        skey = (group_id, topic_id, partition)
        code = self._check(skey, leader_epoch)
        if code is not ErrorCode.NONE:
            return code, (-1, 0, [])
        return ErrorCode.NONE, self.states.get(skey, (-1, 0, []))

    def serve_write(self, group_id: str, topic_id: uuid.UUID, partition: int, state_epoch: int,
                    leader_epoch: int, start: int, batches: list[tuple[int, int, int, int]]) -> ErrorCode:
        """WriteShareGroupState (and InitializeShareGroupState, leader epoch -1): merged
        into the stored state, appended as one ShareSnapshot before the answer."""
        skey = (group_id, topic_id, partition)
        code = self._check(skey, leader_epoch)
        if code is not ErrorCode.NONE:
            return code
        old = self.states.get(skey)
        if old is not None and state_epoch < old[1]:
            return ErrorCode.FENCED_STATE_EPOCH
        if old is not None and state_epoch == old[1]:
            start = start if start >= 0 else old[0]
            batches = merge_batches(old[2], start, batches)
        elif start < 0:  # a new state epoch replaces the state (AlterShareGroupOffsets)
            return ErrorCode.INVALID_REQUEST
        epoch = self._snapshot_epochs.get(skey, -1) + 1
        value = encode_snapshot(epoch, state_epoch, max(leader_epoch, self._leader_epochs.get(skey, -1)),
                                start, batches)
        code = self._append(self.partition_of(*skey), [(encode_key(*skey), value)])
        if code is ErrorCode.NONE:
            self._snapshot_epochs[skey] = epoch
            self.states[skey] = (start, state_epoch, batches)
        return code

    def serve_delete(self, group_id: str, topic_id: uuid.UUID, partition: int) -> ErrorCode:
        skey = (group_id, topic_id, partition)
        code = self._check(skey, None)
        if code is not ErrorCode.NONE:
            return code
        code = self._append(self.partition_of(*skey), [(encode_key(*skey), None)])
        if code is ErrorCode.NONE:
            self.states.pop(skey, None)
            self._leader_epochs.pop(skey, None)
        return code
