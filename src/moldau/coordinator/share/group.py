"""KIP-932 share groups: membership by ShareGroupHeartbeat, assignment on the server.

Theory of operation: a share group is a KIP-848 group without ownership. Members
heartbeat their subscription; the group epoch goes up when membership, subscriptions
or the subscribed topics' partition counts change, and the target assignment is
recomputed by the ``simple`` share assignor (:func:`~moldau.coordinator.group.assignors.simple_assign`),
which may give one partition to several members. Because records, not partitions,
are what members hold (each under an acquisition lock, see :mod:`.partition`), there
is no revocation round: a member moves straight to the target epoch and receives its
target assignment on its next heartbeat.

Share groups live beside classic and consumer groups in the group coordinator's table
(the same ``__consumer_offsets`` partition decides which broker coordinates them), so
FindCoordinator, ListGroups (type ``share``), DescribeGroups and DeleteGroups see them.
Membership itself is not written to the log: members that find their coordinator
restarted get UNKNOWN_MEMBER_ID and rejoin with epoch 0, as Kafka's clients do after
a fencing. What must survive (the share-partition state) is in :mod:`.state`.

Members that stop heartbeating are removed after ``group.share.session.timeout.ms``;
a member that leaves or is removed has the records it acquired released at once
(:meth:`ShareGroupManager.on_member_gone`), so the others get them without waiting
for the locks to time out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moldau.coordinator.group.assignors import SHARE_ASSIGNORS, Assignment, MemberSpec, TopicInfo
from moldau.coordinator.group.consumer import HeartbeatResult  # a share heartbeat answers alike
from moldau.protocol.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from moldau.coordinator.group.coordinator import GroupCoordinator

LEAVE_EPOCH = -1


@dataclass(eq=False)
class ShareMember:
    member_id: str
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: list[str] = field(default_factory=list)
    epoch: int = 0
    assigned: Assignment = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class ShareGroup:
    """One share group (see the module's theory of operation)."""

    group_type = "share"

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ShareMember] = {}
        self.target: dict[str, Assignment] = {}
        self.topics_signature: tuple[tuple[str, str, int], ...] = ()
        self.assignor_name = "simple"

    @property
    def is_empty(self) -> bool:
        return not self.members

    @property
    def state_name(self) -> str:
        if not self.members:
            return "Empty"
        return "Stable"

    def subscribed_topic_names(self) -> set[str]:
        names: set[str] = set()
        for m in self.members.values():
            names.update(m.subscribed_topic_names)
        return names


class ShareGroupManager:
    """The share-group operations on groups owned by a :class:`GroupCoordinator`."""

    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator
        #: called with (group id, member id) when a member leaves or is fenced
        self.member_gone_listeners: list[Callable[[str, str], None]] = []
        #: called with the group id when DeleteGroups deleted a share group
        self.deleted_listeners: list[Callable[[str], None]] = []

    def _config(self, key: str) -> Any:
        return self.coordinator.broker.config[key]

    def group(self, group_id: str, create: bool) -> ShareGroup | None:
        existing = self.coordinator.groups.get(group_id)
        if isinstance(existing, ShareGroup):
            return existing
        if existing is not None:
            # Kafka: a group id in use by another kind of group is refused
            raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a share group.")
        if not create:
            return None
        new = ShareGroup(group_id)
        self.coordinator.groups[group_id] = new  # type: ignore[assignment]
        return new

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        rack_id: str | None,
        subscribed: list[str] | None,
        client_id: str,
        client_host: str,
    ) -> HeartbeatResult:
        interval = int(self.coordinator.group_config(group_id, "share.heartbeat.interval.ms"))
        try:
            if not group_id:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "GroupId can't be empty.")
            if member_epoch == 0 and subscribed is None:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "SubscribedTopicNames must be set in first request.")
            if member_epoch == LEAVE_EPOCH:
                group = self.group(group_id, create=False)
                member = group.members.get(member_id) if group is not None else None
                if group is None or member is None:
                    raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
                self._remove(group, member)
                return HeartbeatResult(member_id=member_id, member_epoch=LEAVE_EPOCH, heartbeat_interval_ms=0)
            group = self.group(group_id, create=member_epoch == 0)
            if group is None:
                raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
            member = group.members.get(member_id) if member_id else None
            if member_epoch == 0:
                if member is None:
                    if len(group.members) >= int(self._config("group.share.max.size")):
                        raise KafkaError(ErrorCode.GROUP_MAX_SIZE_REACHED)
                    member = ShareMember(member_id or str(uuid.uuid4()))
                    group.members[member.member_id] = member
                    group.group_epoch += 1
            else:
                if member is None:
                    raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
                if member_epoch != member.epoch:
                    raise KafkaError(ErrorCode.FENCED_MEMBER_EPOCH)
            member.client_id, member.client_host = client_id, client_host
            if rack_id is not None:
                member.rack_id = rack_id
            if subscribed is not None and sorted(subscribed) != sorted(member.subscribed_topic_names):
                member.subscribed_topic_names = list(subscribed)
                group.group_epoch += 1
            self._maybe_new_target(group)
            self._touch(group, member)
            target = group.target.get(member.member_id, {})
            send = member_epoch == 0 or member.epoch != group.assignment_epoch or target != member.assigned
            member.assigned = {t: set(p) for t, p in target.items()}
            member.epoch = group.assignment_epoch
            return HeartbeatResult(
                member_id=member.member_id,
                member_epoch=member.epoch,
                heartbeat_interval_ms=interval,
                assignment=member.assigned if send else None,
            )
        except KafkaError as exc:
            return HeartbeatResult(error=exc.code, message=exc.message, member_epoch=-1)

    # -- assignment -------------------------------------------------------------------

    def _subscribed_topics(self, group: ShareGroup) -> dict[uuid.UUID, TopicInfo]:
        topics = self.coordinator.broker.topics
        return {
            topics[n].topic_id: TopicInfo(topics[n].topic_id, n, len(topics[n].partitions))
            for n in group.subscribed_topic_names() if n in topics
        }

    def _maybe_new_target(self, group: ShareGroup) -> None:
        infos = self._subscribed_topics(group)
        signature = tuple(sorted((i.name, str(i.topic_id), i.partitions) for i in infos.values()))
        if signature != group.topics_signature:
            group.topics_signature = signature
            group.group_epoch += 1
        if group.assignment_epoch >= group.group_epoch:
            return
        by_name = {i.name: t for t, i in infos.items()}
        specs = [
            MemberSpec(
                m.member_id,
                frozenset(by_name[n] for n in m.subscribed_topic_names if n in by_name),
                {t: frozenset(p) for t, p in group.target.get(m.member_id, {}).items()},
            )
            for m in sorted(group.members.values(), key=lambda m: m.member_id)
        ]
        group.target = SHARE_ASSIGNORS[group.assignor_name](specs, infos)
        group.assignment_epoch = group.group_epoch
        self.coordinator.log.info(
            "share group %s: epoch %d, %d member(s)", group.group_id, group.group_epoch, len(group.members)
        )

    def refresh(self, group: ShareGroup) -> None:
        """Re-check the subscribed topics (a topic created, grown or deleted)."""
        self._maybe_new_target(group)

    # -- timers and removal -----------------------------------------------------------

    def _touch(self, group: ShareGroup, member: ShareMember) -> None:
        member.cancel_timer()
        timeout = int(self.coordinator.group_config(group.group_id, "share.session.timeout.ms")) / 1000
        member.timer = asyncio.get_running_loop().call_later(timeout, self._expire, group, member)

    def _expire(self, group: ShareGroup, member: ShareMember) -> None:
        member.timer = None
        if group.members.get(member.member_id) is member:
            self.coordinator.log.info("share group %s: member %s fenced: session timeout", group.group_id, member.member_id)
            self._remove(group, member)

    def _remove(self, group: ShareGroup, member: ShareMember) -> None:
        member.cancel_timer()
        group.members.pop(member.member_id, None)
        group.target.pop(member.member_id, None)
        group.group_epoch += 1
        self._maybe_new_target(group)
        for listener in self.member_gone_listeners:
            listener(group.group_id, member.member_id)

    def deleted(self, group_id: str) -> None:
        for listener in self.deleted_listeners:
            listener(group_id)

    def shutdown(self, group: ShareGroup) -> None:
        for m in group.members.values():
            m.cancel_timer()

    def is_member(self, group_id: str, member_id: str) -> bool:
        group = self.coordinator.groups.get(group_id)
        return isinstance(group, ShareGroup) and member_id in group.members
