"""KIP-848 consumer groups: ConsumerGroupHeartbeat with server-side assignment.

Theory of operation: there are no join or sync rounds. Each member heartbeats its
subscription; the coordinator keeps three epochs, as KIP-848 defines them:

* the **group epoch** goes up whenever membership, subscriptions or the subscribed
  topics' partition counts change;
* the **target assignment** is recomputed by the group's server-side assignor
  (``uniform`` or ``range``, :mod:`.assignors`) for every new group epoch;
* each **member epoch** catches up with the target epoch as the member reconciles.

Reconciliation is incremental and safe: a member first gets its current assignment
minus the partitions it must give up, and stays at its epoch ("unrevoked
partitions") until a heartbeat shows it has released them; then it moves to the
target epoch and receives the new partitions that nobody else still holds. A
partition that another member has not released yet is handed over on a later
heartbeat ("unreleased partitions"). So no partition is ever owned by two members.

Members that stop heartbeating are fenced after ``group.consumer.session.timeout.ms``
(the group's setting, not the client's); a member that does not revoke within its
rebalance timeout is fenced too. A static member (``instance_id``) leaving with epoch
-2 keeps its place and assignment until its session expires, so that a restart does
not move partitions.

Every change is written to ``__consumer_offsets`` in Kafka's KIP-848 records (group
epoch, member metadata, target assignment, current member assignment; tombstones when
members go), buffered during one heartbeat and appended once at its end; at start
they are replayed, so members carry on with their epochs across a broker restart.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moldau.coordinator.group.assignors import ASSIGNORS, Assignment, MemberSpec, TopicInfo
from moldau.coordinator.group.records import (
    CONSUMER_CURRENT_ASSIGNMENT,
    CONSUMER_GROUP_METADATA,
    CONSUMER_MEMBER_METADATA,
    CONSUMER_TARGET_MEMBER,
    CONSUMER_TARGET_METADATA,
    MEMBER_STATE_CODES,
    MEMBER_STATE_NAMES,
    ConsumerKey,
    ConsumerMemberValue,
    CurrentAssignmentValue,
    decode_current_assignment_value,
    decode_epoch_value,
    decode_member_value,
    decode_target_member_value,
    encode_consumer_group_value,
    encode_consumer_key,
    encode_current_assignment_value,
    encode_member_value,
    encode_target_member_value,
    encode_target_metadata_value,
)
from moldau.protocol.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from moldau.coordinator.group.coordinator import GroupCoordinator

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

STABLE = "STABLE"
UNREVOKED = "UNREVOKED_PARTITIONS"
UNRELEASED = "UNRELEASED_PARTITIONS"


def _copy(a: Assignment) -> Assignment:
    return {t: set(p) for t, p in a.items() if p}


def _minus(a: Assignment, b: Assignment) -> Assignment:
    return {t: p - b.get(t, set()) for t, p in a.items() if p - b.get(t, set())}


def _inter(a: Assignment, b: Assignment) -> Assignment:
    return {t: p & b.get(t, set()) for t, p in a.items() if p & b.get(t, set())}


def _union(a: Assignment, b: Assignment) -> Assignment:
    out = _copy(a)
    for t, p in b.items():
        out.setdefault(t, set()).update(p)
    return {t: p for t, p in out.items() if p}


@dataclass
class ClassicMetadata:
    """What a member speaking the classic protocol inside a consumer group brings (the
    online migration of :mod:`.migration`): its session timeout and its protocols."""

    session_timeout_ms: int
    protocols: list[tuple[str, bytes]]


@dataclass(eq=False)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300_000
    subscribed_topic_names: list[str] = field(default_factory=list)
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    epoch: int = 0
    previous_epoch: int = -1
    state: str = STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    revocation_deadline: float | None = None
    session_deadline: float = 0.0
    timer: asyncio.TimerHandle | None = None
    classic: ClassicMetadata | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def metadata_record(self) -> ConsumerMemberValue:
        return ConsumerMemberValue(
            self.instance_id, self.rack_id, self.client_id, self.client_host,
            sorted(self.subscribed_topic_names), self.subscribed_topic_regex, self.rebalance_timeout_ms,
            self.server_assignor,
            None if self.classic is None else (self.classic.session_timeout_ms, list(self.classic.protocols)),
        )

    def assignment_record(self) -> CurrentAssignmentValue:
        return CurrentAssignmentValue(
            self.epoch, self.previous_epoch, MEMBER_STATE_CODES[self.state], _copy(self.assigned),
            _copy(self.pending_revocation),
        )


class ConsumerGroup:
    """One KIP-848 group (see the module's theory of operation)."""

    group_type = "consumer"

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ConsumerMember] = {}
        self.static_members: dict[str, str] = {}
        self.target: dict[str, Assignment] = {}
        self.topics_signature: tuple[tuple[str, str, int], ...] = ()
        self.assignor_name = "uniform"

    @property
    def is_empty(self) -> bool:
        return not self.members

    @property
    def state_name(self) -> str:
        if not self.members:
            return "Empty"
        if self.assignment_epoch < self.group_epoch:
            return "Assigning"
        if any(m.epoch != self.assignment_epoch or m.state != STABLE for m in self.members.values()):
            return "Reconciling"
        return "Stable"

    def subscribed_topic_names(self) -> set[str]:
        names: set[str] = set()
        for m in self.members.values():
            names.update(m.subscribed_topic_names)
        return names


@dataclass
class HeartbeatResult:
    error: ErrorCode = ErrorCode.NONE
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None


class ConsumerGroupManager:
    """The KIP-848 operations on groups owned by a :class:`GroupCoordinator`."""

    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator
        self._out: list[tuple[str, bytes, bytes | None]] = []
        #: during one heartbeat, the groups whose epoch it already bumped: Kafka moves a
        #: group's epoch at most once per heartbeat (a new member, its subscription and the
        #: topics it brings are one change), so the first member gets epoch 1, not 3
        self._bumped: set[str] | None = None

    # -- persistence ----------------------------------------------------------------

    def _emit(self, group_id: str, kind: int, member_id: str | None, value: bytes | None) -> None:
        self._out.append((group_id, encode_consumer_key(kind, group_id, member_id), value))

    def _emit_member_gone(self, group_id: str, member_id: str) -> None:
        for kind in (CONSUMER_CURRENT_ASSIGNMENT, CONSUMER_TARGET_MEMBER, CONSUMER_MEMBER_METADATA):
            self._emit(group_id, kind, member_id, None)

    def _emit_member(self, group_id: str, member: ConsumerMember) -> None:
        self._emit(group_id, CONSUMER_MEMBER_METADATA, member.member_id, encode_member_value(member.metadata_record()))

    def _emit_assignment(self, group_id: str, member: ConsumerMember) -> None:
        self._emit(
            group_id, CONSUMER_CURRENT_ASSIGNMENT, member.member_id,
            encode_current_assignment_value(member.assignment_record()),
        )

    def _flush(self) -> None:
        """Append what this operation changed, one batch per group."""
        out, self._out = self._out, []
        by_group: dict[str, list[tuple[bytes, bytes | None]]] = {}
        for group_id, key, value in out:
            by_group.setdefault(group_id, []).append((key, value))
        for group_id, records in by_group.items():
            try:
                self.coordinator._append(group_id, records)
            except KafkaError:
                self.coordinator.log.warning("consumer group %s: state not persisted", group_id)

    def tombstones(self, group: ConsumerGroup) -> list[tuple[bytes, bytes | None]]:
        """Records that delete a (memberless) group's KIP-848 state."""
        records: list[tuple[bytes, bytes | None]] = []
        for member_id in group.members:
            for kind in (CONSUMER_CURRENT_ASSIGNMENT, CONSUMER_TARGET_MEMBER, CONSUMER_MEMBER_METADATA):
                records.append((encode_consumer_key(kind, group.group_id, member_id), None))
        records.append((encode_consumer_key(CONSUMER_TARGET_METADATA, group.group_id), None))
        records.append((encode_consumer_key(CONSUMER_GROUP_METADATA, group.group_id), None))
        return records

    def replay(self, key: ConsumerKey, value: bytes | None) -> None:
        """Apply one KIP-848 record read back from ``__consumer_offsets``."""
        existing = self.coordinator.groups.get(key.group)
        group = existing if isinstance(existing, ConsumerGroup) else None
        if key.kind == CONSUMER_GROUP_METADATA:
            if value is None:
                if group is not None:
                    del self.coordinator.groups[key.group]
                return
            if group is None:
                group = ConsumerGroup(key.group)
                group.assignor_name = self._assignors()[0]
                self.coordinator.groups[key.group] = group
            group.group_epoch = decode_epoch_value(value)
            return
        if group is None:
            return
        if key.kind == CONSUMER_TARGET_METADATA:
            if value is not None:
                group.assignment_epoch = decode_epoch_value(value)
            return
        member_id = key.member or ""
        if key.kind == CONSUMER_TARGET_MEMBER:
            if value is None:
                group.target.pop(member_id, None)
            else:
                group.target[member_id] = decode_target_member_value(value)
            return
        member = group.members.get(member_id)
        if value is None:
            if key.kind == CONSUMER_MEMBER_METADATA and member is not None:
                del group.members[member_id]
                if member.instance_id is not None:
                    group.static_members.pop(member.instance_id, None)
            return
        if member is None:
            member = group.members[member_id] = ConsumerMember(member_id)
        if key.kind == CONSUMER_MEMBER_METADATA:
            meta = decode_member_value(value)
            member.instance_id, member.rack_id = meta.instance_id, meta.rack_id
            member.client_id, member.client_host = meta.client_id, meta.client_host
            member.subscribed_topic_names = list(meta.subscribed_topic_names)
            member.subscribed_topic_regex = meta.subscribed_topic_regex
            member.rebalance_timeout_ms = meta.rebalance_timeout_ms
            member.server_assignor = meta.server_assignor
            member.classic = None if meta.classic is None else ClassicMetadata(meta.classic[0], list(meta.classic[1]))
            if member.instance_id is not None:
                group.static_members[member.instance_id] = member_id
        elif key.kind == CONSUMER_CURRENT_ASSIGNMENT:
            current = decode_current_assignment_value(value)
            member.epoch, member.previous_epoch = current.member_epoch, current.previous_member_epoch
            member.state = MEMBER_STATE_NAMES.get(current.state, STABLE)
            member.assigned = current.assigned
            member.pending_revocation = current.pending_revocation

    def arm_restored(self, group: ConsumerGroup) -> None:
        """After loading: fresh sessions for the members, and the topics as they are now."""
        infos = self._subscribed_topics(group)
        group.topics_signature = tuple(sorted((i.name, str(i.topic_id), i.partitions) for i in infos.values()))
        preferred = [m.server_assignor for m in group.members.values() if m.server_assignor in ASSIGNORS]
        group.assignor_name = preferred[0] if preferred else self._assignors()[0]
        for member in group.members.values():
            if member.state == UNREVOKED:
                member.revocation_deadline = time.monotonic() + member.rebalance_timeout_ms / 1000
            self._touch(group, member)

    # -- helpers --------------------------------------------------------------------

    def _config(self, key: str) -> Any:
        return self.coordinator.broker.config[key]

    def _group(self, group_id: str, create: bool) -> ConsumerGroup | None:
        group = self.coordinator.groups.get(group_id)
        if isinstance(group, ConsumerGroup):
            return group
        if getattr(group, "group_type", None) == "share":  # never converted, even when empty
            raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
        if group is not None:
            if not group.is_empty:
                upgraded = self.coordinator.migration.maybe_upgrade(group) if create else None  # type: ignore[arg-type]
                if upgraded is not None:
                    return upgraded
                raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
            if not create:
                return None
            self.coordinator.classic.shutdown(group)  # type: ignore[arg-type]
        elif not create:
            return None
        new = ConsumerGroup(group_id)
        new.assignor_name = self._assignors()[0]
        self.coordinator.groups[group_id] = new
        return new

    def _assignors(self) -> list[str]:
        names = [n for n in self._config("group.consumer.assignors") if n in ASSIGNORS]
        return names or ["uniform"]

    def _subscribed_topics(self, group: ConsumerGroup) -> dict[uuid.UUID, TopicInfo]:
        topics = self.coordinator.broker.topics
        wanted: set[str] = set()
        for m in group.members.values():
            wanted.update(n for n in m.subscribed_topic_names if n in topics)
            if m.subscribed_topic_regex:
                try:
                    pattern = re.compile(m.subscribed_topic_regex)
                except re.error:
                    continue
                wanted.update(n for n in topics if not n.startswith("__") and pattern.fullmatch(n))
        return {
            topics[n].topic_id: TopicInfo(topics[n].topic_id, n, len(topics[n].partitions)) for n in wanted
        }

    def _member_topics(self, member: ConsumerMember, infos: dict[uuid.UUID, TopicInfo]) -> frozenset[uuid.UUID]:
        pattern = None
        if member.subscribed_topic_regex:
            try:
                pattern = re.compile(member.subscribed_topic_regex)
            except re.error:
                pattern = None
        names = set(member.subscribed_topic_names)
        return frozenset(
            t for t, info in infos.items()
            if info.name in names or (pattern is not None and pattern.fullmatch(info.name))
        )

    def _bump(self, group: ConsumerGroup) -> None:
        if self._bumped is not None:
            if group.group_id in self._bumped:
                return
            self._bumped.add(group.group_id)
        group.group_epoch += 1
        self._emit(group.group_id, CONSUMER_GROUP_METADATA, None, encode_consumer_group_value(group.group_epoch))

    def _maybe_new_target(self, group: ConsumerGroup) -> None:
        """Recompute the target assignment if topics changed or the epoch moved on."""
        infos = self._subscribed_topics(group)
        signature = tuple(sorted((i.name, str(i.topic_id), i.partitions) for i in infos.values()))
        if signature != group.topics_signature:
            group.topics_signature = signature
            self._bump(group)
        if group.assignment_epoch >= group.group_epoch:
            return
        preferred = [m.server_assignor for m in group.members.values() if m.server_assignor in ASSIGNORS]
        group.assignor_name = preferred[0] if preferred else self._assignors()[0]
        specs = [
            MemberSpec(
                m.member_id,
                self._member_topics(m, infos),
                {t: frozenset(p) for t, p in group.target.get(m.member_id, {}).items()},
            )
            for m in sorted(group.members.values(), key=lambda m: m.member_id)
        ]
        previous = group.target
        group.target = ASSIGNORS[group.assignor_name](specs, infos)
        group.assignment_epoch = group.group_epoch
        for member_id, target in group.target.items():
            if _copy(previous.get(member_id, {})) != _copy(target):
                self._emit(group.group_id, CONSUMER_TARGET_MEMBER, member_id, encode_target_member_value(target))
        self._emit(
            group.group_id, CONSUMER_TARGET_METADATA, None, encode_target_metadata_value(group.assignment_epoch)
        )
        self.coordinator.log.info(
            "consumer group %s: epoch %d, %d member(s), target assignment by %s",
            group.group_id, group.group_epoch, len(group.members), group.assignor_name,
        )

    def _owned_by_others(self, group: ConsumerGroup, member: ConsumerMember) -> Assignment:
        owned: Assignment = {}
        for other in group.members.values():
            if other is not member:
                owned = _union(owned, _union(other.assigned, other.pending_revocation))
        return owned

    def _reconcile(self, group: ConsumerGroup, member: ConsumerMember, owned: Assignment | None) -> None:
        """Move the member toward its target (see the module's theory of operation)."""
        if member.state == UNREVOKED:
            if owned is None or _minus(owned, member.assigned):
                return  # still holding partitions it must give up
            member.pending_revocation = {}
            member.revocation_deadline = None
            member.state = STABLE
        if member.epoch == group.assignment_epoch and member.state == STABLE:
            return
        target = group.target.get(member.member_id, {})
        to_revoke = _minus(member.assigned, target)
        if to_revoke:
            member.pending_revocation = to_revoke
            member.assigned = _inter(member.assigned, target)
            member.state = UNREVOKED
            member.revocation_deadline = time.monotonic() + member.rebalance_timeout_ms / 1000
            self._arm(group, member)
            return
        free = _minus(_minus(target, member.assigned), self._owned_by_others(group, member))
        member.assigned = _union(member.assigned, free)
        if member.epoch != group.assignment_epoch:
            member.previous_epoch, member.epoch = member.epoch, group.assignment_epoch
        member.state = UNRELEASED if _minus(target, member.assigned) else STABLE

    # -- timers ---------------------------------------------------------------------

    def _touch(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        timeout = (member.classic.session_timeout_ms if member.classic
                   else self.coordinator.group_config(group.group_id, "consumer.session.timeout.ms"))
        member.session_deadline = time.monotonic() + timeout / 1000
        self._arm(group, member)

    def _arm(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        deadline = member.session_deadline
        if member.revocation_deadline is not None:
            deadline = min(deadline, member.revocation_deadline)
        member.cancel_timer()
        loop = asyncio.get_running_loop()
        member.timer = loop.call_later(max(deadline - time.monotonic(), 0), self._check, group, member)

    def _check(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        member.timer = None
        if group.members.get(member.member_id) is not member:
            return
        now = time.monotonic()
        if now >= member.session_deadline:
            reason = "session timeout"
        elif member.revocation_deadline is not None and now >= member.revocation_deadline:
            reason = "rebalance timeout (partitions not revoked)"
        else:
            self._arm(group, member)
            return
        self.coordinator.log.info("consumer group %s: member %s fenced: %s", group.group_id, member.member_id, reason)
        self._remove(group, member)
        self.coordinator.migration.maybe_downgrade(group)
        self._flush()

    def _remove(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        member.cancel_timer()
        group.members.pop(member.member_id, None)
        if member.instance_id is not None and group.static_members.get(member.instance_id) == member.member_id:
            del group.static_members[member.instance_id]
        group.target.pop(member.member_id, None)
        self._emit_member_gone(group.group_id, member.member_id)
        self._bump(group)

    # -- ConsumerGroupHeartbeat ---------------------------------------------------------

    def heartbeat(self, *args: Any) -> HeartbeatResult:
        """One ConsumerGroupHeartbeat (arguments as :meth:`_heartbeat`); state persisted."""
        self._bumped = set()
        try:
            return self._heartbeat(*args)
        finally:
            self._bumped = None
            self._flush()

    def _heartbeat(
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        instance_id: str | None,
        rack_id: str | None,
        rebalance_timeout_ms: int,
        subscribed_topic_names: list[str] | None,
        subscribed_topic_regex: str | None,
        server_assignor: str | None,
        owned: Assignment | None,
        client_id: str,
        client_host: str,
    ) -> HeartbeatResult:
        interval = int(self.coordinator.group_config(group_id, "consumer.heartbeat.interval.ms"))
        if not group_id:
            return HeartbeatResult(ErrorCode.INVALID_REQUEST, "GroupId can't be empty.")
        if server_assignor is not None and server_assignor not in self._assignors():
            return HeartbeatResult(ErrorCode.UNSUPPORTED_ASSIGNOR, f"Assignor {server_assignor} is not supported.")
        if member_epoch == 0 and subscribed_topic_names is None and subscribed_topic_regex is None:
            return HeartbeatResult(ErrorCode.INVALID_REQUEST, "SubscribedTopicNames must be set in first request.")
        try:
            group = self._group(group_id, create=member_epoch == 0)
        except KafkaError as exc:
            return HeartbeatResult(exc.code, exc.message)
        if member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(group, member_id, member_epoch, instance_id)
        if group is None:  # a member epoch above 0 never creates the group (as Kafka)
            return HeartbeatResult(ErrorCode.GROUP_ID_NOT_FOUND, f"Consumer group {group_id} not found.")
        member = group.members.get(member_id) if member_id else None
        if member_epoch == 0:
            member_or_error = self._join(group, member_id, member, instance_id)
            if isinstance(member_or_error, HeartbeatResult):
                return member_or_error
            member = member_or_error
        elif member is None:
            return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group.")
        elif member_epoch != member.epoch and not (
            member_epoch == member.previous_epoch and owned is not None and not _minus(owned, member.assigned)
        ):
            return HeartbeatResult(
                ErrorCode.FENCED_MEMBER_EPOCH,
                f"The member epoch {member_epoch} is fenced; the current epoch is {member.epoch}.",
            )
        assert member is not None
        before = _copy(member.assigned)
        meta_before = member.metadata_record() if member_epoch != 0 else None
        assignment_before = member.assignment_record() if member_epoch != 0 else None
        changed = False
        if rebalance_timeout_ms > 0:
            member.rebalance_timeout_ms = rebalance_timeout_ms
        member.rack_id = rack_id if rack_id is not None else member.rack_id
        member.client_id, member.client_host = client_id, client_host
        if subscribed_topic_names is not None and sorted(subscribed_topic_names) != sorted(member.subscribed_topic_names):
            member.subscribed_topic_names = list(subscribed_topic_names)
            changed = True
        if subscribed_topic_regex is not None and (subscribed_topic_regex or None) != member.subscribed_topic_regex:
            member.subscribed_topic_regex = subscribed_topic_regex or None
            changed = True
        if server_assignor is not None and server_assignor != member.server_assignor:
            member.server_assignor = server_assignor
            changed = True
        if changed:
            self._bump(group)
        self._touch(group, member)
        self._maybe_new_target(group)
        self._reconcile(group, member, owned)
        if member.metadata_record() != meta_before:
            self._emit_member(group.group_id, member)
        if member.assignment_record() != assignment_before:
            self._emit_assignment(group.group_id, member)
        send = member_epoch == 0 or member.assigned != before or (owned is not None and owned != member.assigned)
        return HeartbeatResult(
            ErrorCode.NONE, None, member.member_id, member.epoch, interval, _copy(member.assigned) if send else None
        )

    def _join(
        self, group: ConsumerGroup, member_id: str, member: ConsumerMember | None, instance_id: str | None
    ) -> ConsumerMember | HeartbeatResult:
        if instance_id is not None and instance_id in group.static_members:
            old = group.members[group.static_members[instance_id]]
            if old.epoch != STATIC_LEAVE_EPOCH and old.member_id != member_id:
                return HeartbeatResult(
                    ErrorCode.UNRELEASED_INSTANCE_ID,
                    f"Static member {instance_id} with member id {old.member_id} is still in the group.",
                )
            # A static member back within its session: it takes over its old place.
            old.cancel_timer()
            del group.members[old.member_id]
            self._emit_member_gone(group.group_id, old.member_id)
            target = group.target.pop(old.member_id, {})
            old.member_id = member_id or str(uuid.uuid4())
            old.epoch, old.previous_epoch = old.previous_epoch if old.previous_epoch >= 0 else 0, -1
            group.members[old.member_id] = old
            group.target[old.member_id] = target
            group.static_members[instance_id] = old.member_id
            self._emit(group.group_id, CONSUMER_TARGET_MEMBER, old.member_id, encode_target_member_value(target))
            self.coordinator.log.info(
                "consumer group %s: static member %s is back as %s", group.group_id, instance_id, old.member_id
            )
            return old
        if member is not None:
            # Rejoining with epoch 0 after an error: start over with nothing owned.
            member.assigned = {}
            member.pending_revocation = {}
            member.state = STABLE
            member.epoch, member.previous_epoch = 0, -1
            self._bump(group)
            return member
        if len(group.members) >= int(self._config("group.consumer.max.size")):
            return HeartbeatResult(ErrorCode.GROUP_MAX_SIZE_REACHED, "The consumer group has reached its maximum size.")
        new = ConsumerMember(member_id or str(uuid.uuid4()), instance_id)
        group.members[new.member_id] = new
        if instance_id is not None:
            group.static_members[instance_id] = new.member_id
        self._bump(group)
        return new

    def _leave(self, group: ConsumerGroup | None, member_id: str, epoch: int, instance_id: str | None) -> HeartbeatResult:
        member = group.members.get(member_id) if group is not None else None
        if group is None or member is None:
            return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group.")
        if epoch == STATIC_LEAVE_EPOCH and member.instance_id is not None:
            # Keep the place (and the assignment) until the session times out.
            member.previous_epoch, member.epoch = member.epoch, STATIC_LEAVE_EPOCH
            self._emit_assignment(group.group_id, member)
            self._touch(group, member)
        else:
            self.coordinator.log.info("consumer group %s: member %s left", group.group_id, member_id)
            self._remove(group, member)
            self.coordinator.migration.maybe_downgrade(group)
        return HeartbeatResult(ErrorCode.NONE, None, member_id, epoch, 0, None)

    # -- offsets --------------------------------------------------------------------

    def validate_commit(self, group: ConsumerGroup, member_id: str, epoch: int) -> None:
        if epoch < 0 and not group.members:
            return  # Kafka's ConsumerGroup.validateOffsetCommit: a standalone commit to an empty group
        member = group.members.get(member_id)
        if member is None:
            raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
        if member.classic is not None:  # Kafka's validateMemberEpoch for classic members: exact
            if epoch != member.epoch:
                raise KafkaError(ErrorCode.ILLEGAL_GENERATION)
            return
        if epoch > member.epoch:
            raise KafkaError(ErrorCode.FENCED_MEMBER_EPOCH)
        if epoch < member.epoch and epoch != member.previous_epoch:
            raise KafkaError(ErrorCode.STALE_MEMBER_EPOCH)

    def validate_offset_fetch(self, group_id: str, member_id: str, epoch: int) -> None:
        group = self.coordinator.groups.get(group_id)
        if not isinstance(group, ConsumerGroup):
            return
        member = group.members.get(member_id)
        if member is None:
            raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
        if epoch != member.epoch and epoch != member.previous_epoch:
            raise KafkaError(ErrorCode.STALE_MEMBER_EPOCH)

    # -- describe, shutdown ---------------------------------------------------------

    def describe_as_classic(self, group: ConsumerGroup, answer: Any, member_class: Any) -> Any:
        """DescribeGroups on a KIP-848 group: Kafka answers that it is not a classic group."""
        answer.error_code = int(ErrorCode.GROUP_ID_NOT_FOUND)
        answer.error_message = f"Group {group.group_id} is not a classic group."
        return answer

    def shutdown(self, group: ConsumerGroup) -> None:
        for m in group.members.values():
            m.cancel_timer()
