"""KIP-848 online migration: a live group changes protocol without stopping.

Theory of operation (Kafka's GroupMetadataManager, "online upgrade/downgrade"):

* **Upgrade.** When a ConsumerGroupHeartbeat joins a non-empty classic group that uses
  the consumer protocol, and ``group.consumer.migration.policy`` allows it (``upgrade``
  or ``bidirectional``, Kafka 4's default), the classic group becomes a consumer group:
  each member keeps its id, its subscription (from its embedded subscription) and its
  assignment (from its embedded assignment) at member epoch = the classic generation,
  which is also the new group's epoch and target epoch. Pending joins and syncs are
  answered REBALANCE_IN_PROGRESS. The classic group's record gets a tombstone and the
  consumer group's records are written in the same batch.
* **Classic members inside a consumer group.** They keep speaking JoinGroup, SyncGroup,
  Heartbeat, LeaveGroup and OffsetCommit; the server assigns them as any member
  (Kafka's classicGroupJoinToConsumerGroup and friends). JoinGroup reconciles the member
  with the target (member epoch is the generation, no leader, no member list);
  SyncGroup hands the member its assignment in its own ConsumerProtocolAssignment
  version; Heartbeat answers REBALANCE_IN_PROGRESS while the member must rejoin (behind
  the group epoch, partitions to revoke, or partitions it waits for now free).
* **Downgrade.** When the last member speaking the consumer protocol leaves or is
  fenced and members remain, all classic, and the policy allows it (``downgrade`` or
  ``bidirectional``), the group becomes a classic group again (generation = group
  epoch, each member's assignment re-encoded), and a rebalance starts so the members
  rejoin as a classic group.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from moldau.coordinator.group.classic import (
    ClassicGroup,
    ClassicMember,
    GroupState,
    JoinResult,
    SyncResult,
)
from moldau.coordinator.group.consumer import (
    UNRELEASED,
    UNREVOKED,
    ClassicMetadata,
    ConsumerGroup,
    ConsumerMember,
    _copy,
    _inter,
    _minus,
)
from moldau.coordinator.group.records import (
    CONSUMER_GROUP_METADATA,
    CONSUMER_TARGET_MEMBER,
    CONSUMER_TARGET_METADATA,
    RecordFormatError,
    decode_consumer_assignment,
    decode_consumer_subscription,
    encode_consumer_assignment,
    encode_consumer_group_value,
    encode_group_key,
    encode_target_member_value,
    encode_target_metadata_value,
)
from moldau.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from moldau.coordinator.group.coordinator import GroupCoordinator

CONSUMER_PROTOCOL = "consumer"


class GroupMigration:
    """Online upgrade and downgrade, and classic members of consumer groups."""

    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator

    # -- helpers --------------------------------------------------------------------

    def _policy(self) -> str:
        return str(self.coordinator.broker.config["group.consumer.migration.policy"]).lower()

    def _by_id(self, by_name: dict[str, set[int]]) -> dict[uuid.UUID, set[int]]:
        topics = self.coordinator.broker.topics
        out: dict[uuid.UUID, set[int]] = {}
        for name, parts in by_name.items():
            topic = topics.get(name)
            if topic is not None:
                valid = {p for p in parts if p in topic.partitions}
                if valid:
                    out[topic.topic_id] = valid
        return out

    def _by_name(self, by_id: dict[uuid.UUID, set[int]]) -> dict[str, set[int]]:
        names = self.coordinator.broker.topic_names_by_id
        return {names[t]: set(p) for t, p in by_id.items() if t in names and p}

    @staticmethod
    def _version(member: ConsumerMember) -> int:
        assert member.classic is not None
        try:
            return decode_consumer_subscription(member.classic.protocols[0][1]).version
        except (RecordFormatError, IndexError):
            return 0

    def consumer_group_of(self, group_id: str) -> ConsumerGroup | None:
        """The group if it is a consumer group with members (classic requests to it are
        answered here), else None."""
        group = self.coordinator.groups.get(group_id)
        return group if isinstance(group, ConsumerGroup) and group.members else None

    # -- upgrade ----------------------------------------------------------------------

    def maybe_upgrade(self, old: ClassicGroup) -> ConsumerGroup | None:
        """The consumer group ``old`` becomes, or None if it may not (Kafka's
        validateOnlineUpgrade and convertToConsumerGroup)."""
        manager = self.coordinator.consumer
        if self._policy() not in ("upgrade", "bidirectional") or old.protocol_type != CONSUMER_PROTOCOL:
            return None
        if old.state is GroupState.DEAD or len(old.members) > int(manager._config("group.consumer.max.size")):
            return None
        group_id = old.group_id
        new = ConsumerGroup(group_id)
        new.assignor_name = manager._assignors()[0]
        new.group_epoch = new.assignment_epoch = old.generation_id
        for m in old.members.values():
            try:
                subscription = decode_consumer_subscription(m.metadata(old.protocol_name) or m.protocols[0][1])
            except (RecordFormatError, IndexError):
                self.coordinator.log.warning("group %s: not upgraded, a member's subscription is malformed", group_id)
                return None
            assigned = self._by_id(decode_consumer_assignment(m.assignment))
            member = ConsumerMember(
                m.member_id, m.group_instance_id, None, m.client_id, m.client_host, m.rebalance_timeout_ms,
                list(subscription.topics), epoch=old.generation_id, assigned=assigned,
                classic=ClassicMetadata(m.session_timeout_ms, list(m.protocols)),
            )
            new.members[member.member_id] = member
            if member.instance_id is not None:
                new.static_members[member.instance_id] = member.member_id
            new.target[member.member_id] = _copy(assigned)
        for m in old.members.values():
            m.cancel_timer()
            m.complete_join(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, m.member_id))
            m.complete_sync(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        for timer in (old.join_timer, old.sync_timer, *old.pending_members.values()):
            if timer is not None:
                timer.cancel()
        old.state = GroupState.DEAD
        manager._out.append((group_id, encode_group_key(group_id), None))  # the classic group's tombstone
        manager._emit(group_id, CONSUMER_GROUP_METADATA, None, encode_consumer_group_value(new.group_epoch))
        for member in new.members.values():
            manager._emit_member(group_id, member)
            manager._emit(group_id, CONSUMER_TARGET_MEMBER, member.member_id,
                          encode_target_member_value(new.target[member.member_id]))
            manager._emit_assignment(group_id, member)
        manager._emit(group_id, CONSUMER_TARGET_METADATA, None, encode_target_metadata_value(new.assignment_epoch))
        infos = manager._subscribed_topics(new)
        new.topics_signature = tuple(sorted((i.name, str(i.topic_id), i.partitions) for i in infos.values()))
        self.coordinator.groups[group_id] = new
        for member in new.members.values():
            manager._touch(new, member)
        self.coordinator.log.info(
            "group %s: upgraded from classic to consumer at epoch %d with %d member(s)",
            group_id, new.group_epoch, len(new.members),
        )
        return new

    # -- downgrade --------------------------------------------------------------------

    def maybe_downgrade(self, group: ConsumerGroup) -> None:
        """After a member left or was fenced: back to a classic group if only classic
        members remain (Kafka's validateOnlineDowngradeWithFencedMember, convertToClassicGroup)."""
        if not group.members or any(m.classic is None for m in group.members.values()):
            return
        if self._policy() not in ("downgrade", "bidirectional"):
            return
        if len(group.members) > int(self.coordinator.broker.config["group.max.size"]):
            return
        manager, classic_manager = self.coordinator.consumer, self.coordinator.classic
        group_id = group.group_id
        classic = ClassicGroup(group_id, self.coordinator.now_ms())
        classic.generation_id = group.group_epoch
        classic.protocol_type = CONSUMER_PROTOCOL
        for cm in group.members.values():
            assert cm.classic is not None
            cm.cancel_timer()
            assignment = encode_consumer_assignment(self._version(cm), self._by_name(cm.assigned))
            member = ClassicMember(
                cm.member_id, cm.instance_id, cm.client_id, cm.client_host, cm.rebalance_timeout_ms,
                cm.classic.session_timeout_ms, CONSUMER_PROTOCOL, list(cm.classic.protocols), assignment,
            )
            classic.members[member.member_id] = member
            if member.group_instance_id is not None:
                classic.static_members[member.group_instance_id] = member.member_id
        classic.leader_id = next(iter(classic.members))
        classic.protocol_name = classic.select_protocol()
        classic.state = GroupState.STABLE
        manager._out.extend((group_id, key, value) for key, value in manager.tombstones(group))
        manager._flush()
        self.coordinator.groups[group_id] = classic
        self.coordinator.store_group(classic)
        for member in classic.members.values():
            classic_manager.schedule_expiry(classic, member)
        self.coordinator.log.info(
            "group %s: downgraded from consumer to classic at generation %d with %d member(s)",
            group_id, classic.generation_id, len(classic.members),
        )
        classic_manager.prepare_rebalance(classic, f"Downgrade group {group_id} from consumer to classic.")

    # -- classic requests to a consumer group ---------------------------------------------

    def _member(self, group: ConsumerGroup, member_id: str, instance_id: str | None) -> ConsumerMember | ErrorCode:
        if instance_id is not None:
            known = group.static_members.get(instance_id)
            if known is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if known != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        member = group.members.get(member_id)
        if member is None or member.classic is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return member

    def join(
        self,
        group: ConsumerGroup,
        member_id: str,
        instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member_id: bool,
    ) -> JoinResult:
        """Kafka's classicGroupJoinToConsumerGroup."""
        manager = self.coordinator.consumer
        if protocol_type != CONSUMER_PROTOCOL or not protocols:
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
        try:
            subscription = decode_consumer_subscription(protocols[0][1])
        except RecordFormatError:
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
        if not member_id:
            member_id = f"{client_id}-{uuid.uuid4()}"
            if require_known_member_id:
                return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id)
        try:
            member = group.members.get(member_id)
            if member is not None and member.classic is None:
                return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
            changed = member is None
            if member is None:
                if len(group.members) >= int(manager._config("group.consumer.max.size")):
                    return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, member_id)
                member = ConsumerMember(member_id, instance_id)
                group.members[member_id] = member
                if instance_id is not None:
                    group.static_members[instance_id] = member_id
            meta_before, assignment_before = member.metadata_record(), member.assignment_record()
            member.classic = ClassicMetadata(session_timeout_ms, list(protocols))
            member.client_id, member.client_host = client_id, client_host
            if rebalance_timeout_ms > 0:
                member.rebalance_timeout_ms = rebalance_timeout_ms
            if sorted(subscription.topics) != sorted(member.subscribed_topic_names):
                member.subscribed_topic_names = list(subscription.topics)
                changed = True
            if changed:
                manager._bump(group)
            manager._touch(group, member)
            manager._maybe_new_target(group)
            owned = self._by_id(subscription.owned)
            # What the member reports it still owns bounds what it holds (Kafka's
            # CurrentAssignmentBuilder.ownsRevokedPartitions): an eager member that
            # rejoins has given everything up and needs no revocation round.
            member.assigned = _inter(member.assigned, owned)
            if member.state == UNREVOKED:
                member.pending_revocation = _inter(member.pending_revocation, owned)
            manager._reconcile(group, member, owned)
            if member.metadata_record() != meta_before:
                manager._emit_member(group.group_id, member)
            if member.assignment_record() != assignment_before:
                manager._emit_assignment(group.group_id, member)
        finally:
            manager._flush()
        return JoinResult(
            ErrorCode.NONE, member.member_id, member.epoch, CONSUMER_PROTOCOL, protocols[0][0], "", [], False
        )

    def sync(
        self, group: ConsumerGroup, member_id: str, instance_id: str | None, generation_id: int,
        protocol_type: str | None, protocol_name: str | None,
    ) -> SyncResult:
        """Kafka's classicGroupSyncToConsumerGroup: the member's assignment, server-made."""
        member = self._member(group, member_id, instance_id)
        if isinstance(member, ErrorCode):
            return SyncResult(member)
        assert member.classic is not None
        if generation_id != member.epoch:
            return SyncResult(ErrorCode.ILLEGAL_GENERATION)
        names = [name for name, _ in member.classic.protocols]
        if (protocol_type is not None and protocol_type != CONSUMER_PROTOCOL) or (
            protocol_name is not None and protocol_name not in names
        ):
            return SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        if group.group_epoch > member.epoch and member.state != UNREVOKED:
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        self.coordinator.consumer._touch(group, member)
        assignment = encode_consumer_assignment(self._version(member), self._by_name(member.assigned))
        return SyncResult(ErrorCode.NONE, assignment, CONSUMER_PROTOCOL, protocol_name or names[0])

    def heartbeat(self, group: ConsumerGroup, member_id: str, instance_id: str | None, generation_id: int) -> ErrorCode:
        """Kafka's classicGroupHeartbeatToConsumerGroup."""
        member = self._member(group, member_id, instance_id)
        if isinstance(member, ErrorCode):
            return member
        if generation_id != member.epoch:
            return ErrorCode.ILLEGAL_GENERATION
        manager = self.coordinator.consumer
        manager._touch(group, member)
        waiting = _minus(group.target.get(member.member_id, {}), member.assigned)
        freed = _minus(waiting, manager._owned_by_others(group, member))
        if member.epoch < group.group_epoch or member.state == UNREVOKED or (member.state == UNRELEASED and freed):
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(self, group: ConsumerGroup, leaving: list[tuple[str, str | None]]) -> tuple[ErrorCode, list[ErrorCode]]:
        """Kafka's classicGroupLeaveToConsumerGroup (a classic member leaving never
        downgrades the group)."""
        manager = self.coordinator.consumer
        errors: list[ErrorCode] = []
        try:
            for member_id, instance_id in leaving:
                if instance_id is not None and not member_id:
                    member_id = group.static_members.get(instance_id, "")
                member = self._member(group, member_id, instance_id)
                if isinstance(member, ErrorCode):
                    errors.append(member)
                    continue
                self.coordinator.log.info("consumer group %s: classic member %s left", group.group_id, member_id)
                manager._remove(group, member)
                errors.append(ErrorCode.NONE)
        finally:
            manager._flush()
        return ErrorCode.NONE, errors
