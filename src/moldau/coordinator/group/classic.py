"""Classic consumer groups: JoinGroup, SyncGroup, Heartbeat and LeaveGroup.

Theory of operation: a group moves through Kafka's states

    Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
          <--last member leaves--                 --leader's SyncGroup--> Stable

and back to PreparingRebalance whenever a member joins, leaves, dies or changes its
protocols. A JoinGroup waits (the connection answers in order, so a pending future is
fine) until every known member has rejoined or the largest rebalance timeout passed;
then the generation is bumped, a protocol is chosen by vote among those every member
supports, and every waiting member is answered -- the leader with all members'
metadata so that the client computes the assignment. SyncGroup from the leader
carries the assignment; the others wait for it. Members that stop heartbeating are
removed after their session timeout, which starts another rebalance.

KIP-394: a JoinGroup (v4+) without a member id gets MEMBER_ID_REQUIRED and a fresh
id; the member is "pending" (it holds up the rebalance) until it joins with it or its
session times out. KIP-345: a member with a ``group.instance.id`` is static; when it
comes back with no member id while the group is Stable and its protocols have not
changed, it takes over its old identity and assignment without a rebalance, and the
old member id is fenced (FENCED_INSTANCE_ID).

The leader's SyncGroup and a static member's takeover are answered only once the group
record they write is in the ISR of ``__consumer_offsets`` (in a task of its own, so a
client that hangs up cannot leave the group half-done); a failed write is answered with
Kafka's mapping of its error and undone (a new rebalance, the old member id).

Everything runs on the event loop; the state changes are synchronous, so a request
sees a consistent group. Session timers are ``loop.call_later`` handles that check a
deadline when they fire, so a heartbeat only moves the deadline.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from moldau.coordinator.group.records import GroupValue, MemberValue, subscribed_topics
from moldau.protocol.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from moldau.coordinator.group.coordinator import GroupCoordinator


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass
class JoinResult:
    """What a JoinGroup is answered with."""

    error: ErrorCode
    member_id: str
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    skip_assignment: bool = False


@dataclass
class SyncResult:
    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(eq=False)
class ClassicMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_waiters: list[asyncio.Future[JoinResult]] = field(default_factory=list)
    sync_waiters: list[asyncio.Future[SyncResult]] = field(default_factory=list)
    heartbeat_deadline: float = 0.0
    timer: asyncio.TimerHandle | None = None
    is_new: bool = False

    @property
    def awaiting_join(self) -> bool:
        return any(not f.done() for f in self.join_waiters)

    @property
    def awaiting_sync(self) -> bool:
        return any(not f.done() for f in self.sync_waiters)

    def metadata(self, protocol: str | None) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return data
        return b""

    def complete_join(self, result: JoinResult) -> None:
        waiters, self.join_waiters = self.join_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(result)

    def complete_sync(self, result: SyncResult) -> None:
        waiters, self.sync_waiters = self.sync_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(result)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class ClassicGroup:
    """One classic group's state (see the module's theory of operation)."""

    group_type = "classic"

    def __init__(self, group_id: str, now_ms: int) -> None:
        self.group_id = group_id
        self.state = GroupState.EMPTY
        self.state_timestamp = now_ms
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, ClassicMember] = {}
        self.static_members: dict[str, str] = {}
        self.pending_members: dict[str, asyncio.TimerHandle | None] = {}
        self.new_member_added = False
        self.last_member_added_ms = 0
        self.in_initial_delay = False
        self.join_timer: asyncio.TimerHandle | None = None
        self.sync_timer: asyncio.TimerHandle | None = None

    # -- queries --------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return not self.members and not self.pending_members

    def transition(self, state: GroupState, now_ms: int) -> None:
        self.state = state
        self.state_timestamp = now_ms

    def candidate_protocols(self) -> set[str]:
        """Protocols every member supports (the only ones the vote may pick)."""
        sets = [{name for name, _ in m.protocols} for m in self.members.values()]
        return set.intersection(*sets) if sets else set()

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        if not protocol_type or not protocols:
            return False
        if not self.members:
            return True
        return protocol_type == self.protocol_type and bool(
            {name for name, _ in protocols} & self.candidate_protocols()
        )

    def select_protocol(self) -> str:
        candidates = self.candidate_protocols()
        votes: Counter[str] = Counter()
        order: list[str] = []
        for m in self.members.values():
            choice = next(name for name, _ in m.protocols if name in candidates)
            votes[choice] += 1
            if choice not in order:
                order.append(choice)
        best = max(votes.values())
        return next(name for name in order if votes[name] == best)

    def all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to; None if the group is not a consumer group."""
        if self.protocol_type != "consumer" or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            topics |= subscribed_topics(m.metadata(self.protocol_name))
        return topics

    def join_result(self, member: ClassicMember, *, skip_assignment: bool = False) -> JoinResult:
        is_leader = member.member_id == self.leader_id
        members = (
            [(m.member_id, m.group_instance_id, m.metadata(self.protocol_name)) for m in self.members.values()]
            if is_leader
            else []
        )
        return JoinResult(
            ErrorCode.NONE,
            member.member_id,
            self.generation_id,
            self.protocol_type,
            self.protocol_name,
            self.leader_id or "",
            members,
            skip_assignment,
        )

    def to_record(self, now_ms: int) -> GroupValue:
        return GroupValue(
            protocol_type=self.protocol_type or "",
            generation=self.generation_id,
            protocol=self.protocol_name,
            leader=self.leader_id,
            current_state_timestamp=now_ms,
            members=[
                MemberValue(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.session_timeout_ms,
                    m.metadata(self.protocol_name),
                    m.assignment,
                )
                for m in self.members.values()
            ],
        )


class ClassicGroupManager:
    """The classic protocol's operations on groups owned by a :class:`GroupCoordinator`."""

    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator
        #: (group, generation) whose assignment is being written (a retried leader's
        #: SyncGroup waits for that write instead of starting another)
        self._storing: set[tuple[str, int]] = set()

    # -- helpers --------------------------------------------------------------------

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _now_ms(self) -> int:
        return self.coordinator.now_ms()

    def _config(self, key: str) -> int:
        return self.coordinator.broker.config.int(key)

    def _new_member_id(self, client_id: str, instance_id: str | None) -> str:
        return f"{instance_id or client_id}-{uuid.uuid4()}"

    def _group(self, group_id: str) -> ClassicGroup | None:
        group = self.coordinator.groups.get(group_id)
        if group is None:
            return None
        if not isinstance(group, ClassicGroup):
            raise KafkaError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a classic group.")
        return group

    # -- heartbeats and session expiry -----------------------------------------------

    def schedule_expiry(self, group: ClassicGroup, member: ClassicMember) -> None:
        """Move the member's session deadline; arm its timer if it has none."""
        member.heartbeat_deadline = time.monotonic() + member.session_timeout_ms / 1000
        if member.timer is None:
            member.timer = self._loop.call_later(
                member.session_timeout_ms / 1000, self._check_expiry, group, member
            )

    def _check_expiry(self, group: ClassicGroup, member: ClassicMember) -> None:
        member.timer = None
        if group.members.get(member.member_id) is not member:
            return
        if member.awaiting_join or member.awaiting_sync:
            # The join and sync phases have their own (rebalance) timeouts.
            member.heartbeat_deadline = time.monotonic() + member.session_timeout_ms / 1000
        remaining = member.heartbeat_deadline - time.monotonic()
        if remaining > 0:
            member.timer = self._loop.call_later(remaining, self._check_expiry, group, member)
            return
        self.coordinator.log.info(
            "group %s: member %s expired after %d ms without a heartbeat",
            group.group_id, member.member_id, member.session_timeout_ms,
        )
        self.remove_member(group, member, "session timeout")

    def _expire_pending(self, group: ClassicGroup, member_id: str) -> None:
        if member_id in group.pending_members:
            del group.pending_members[member_id]
            if group.state is GroupState.PREPARING_REBALANCE:
                self._try_complete_join(group)

    # -- membership changes --------------------------------------------------------

    def _add_member(self, group: ClassicGroup, member: ClassicMember) -> None:
        if not group.members:
            group.protocol_type = member.protocol_type
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static_members[member.group_instance_id] = member.member_id
        if group.leader_id is None:
            group.leader_id = member.member_id
        member.is_new = True
        group.new_member_added = True
        group.last_member_added_ms = self._now_ms()
        self.schedule_expiry(group, member)

    def remove_member(self, group: ClassicGroup, member: ClassicMember, reason: str) -> None:
        member.cancel_timer()
        group.members.pop(member.member_id, None)
        if member.group_instance_id is not None and group.static_members.get(member.group_instance_id) == member.member_id:
            del group.static_members[member.group_instance_id]
        member.complete_join(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member.member_id))
        member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self.prepare_rebalance(group, f"removing member {member.member_id} on {reason}")
        elif group.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(group)

    # -- rebalance ------------------------------------------------------------------

    def prepare_rebalance(self, group: ClassicGroup, reason: str) -> None:
        self.coordinator.log.info(
            "group %s: preparing to rebalance (generation %d): %s", group.group_id, group.generation_id, reason
        )
        if group.state is GroupState.COMPLETING_REBALANCE:
            for m in group.members.values():
                m.assignment = b""
                m.complete_sync(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        if group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None
        was_empty = group.state is GroupState.EMPTY
        group.transition(GroupState.PREPARING_REBALANCE, self._now_ms())
        if group.join_timer is not None:
            group.join_timer.cancel()
        rebalance_timeout = max((m.rebalance_timeout_ms for m in group.members.values()), default=0)
        delay = self._config("group.initial.rebalance.delay.ms")
        group.in_initial_delay = was_empty and delay > 0
        if group.in_initial_delay:
            group.new_member_added = False
            remaining = max(rebalance_timeout - delay, 0)
            group.join_timer = self._loop.call_later(delay / 1000, self._initial_join_expired, group, delay, remaining)
        else:
            group.join_timer = self._loop.call_later(rebalance_timeout / 1000, self._complete_join, group)
            self._try_complete_join(group)

    def _initial_join_expired(self, group: ClassicGroup, delay: int, remaining: int) -> None:
        """Kafka's InitialDelayedJoin: wait while new members keep arriving.

        One difference, on purpose: Kafka re-arms the whole delay when any member joined
        during it, so members that start together (the usual deployment) wait two
        delays. Here the wait goes on only until the group has been quiet -- no new
        member -- for ``group.initial.rebalance.delay.ms``: a group whose members start
        together forms one delay after the first join, and members that trickle in
        still keep it waiting, up to the rebalance timeout as in Kafka.
        """
        group.join_timer = None
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        quiet = self._now_ms() - group.last_member_added_ms
        if group.new_member_added and remaining > 0 and quiet < delay:
            group.new_member_added = False
            step = min(delay - quiet, remaining)
            group.join_timer = self._loop.call_later(
                step / 1000, self._initial_join_expired, group, delay, max(remaining - step, 0)
            )
            return
        group.in_initial_delay = False
        self._complete_join(group)

    def _try_complete_join(self, group: ClassicGroup) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        if group.in_initial_delay:
            return  # the initial delay's timer decides (Kafka's InitialDelayedJoin)
        if group.all_joined():
            self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        group.in_initial_delay = False
        now = self._now_ms()
        for m in list(group.members.values()):
            if not m.awaiting_join and m.group_instance_id is None:
                self.coordinator.log.info("group %s: member %s did not rejoin in time", group.group_id, m.member_id)
                m.cancel_timer()
                del group.members[m.member_id]
                if group.leader_id == m.member_id:
                    group.leader_id = None
        # Pending members (KIP-394) stay pending: when they join with their id, the
        # group rebalances again; if they never do, their session timer drops them.
        group.generation_id += 1
        if not group.members:
            group.protocol_name = None
            group.leader_id = None
            group.transition(GroupState.EMPTY, now)
            self.coordinator.store_group(group)
            return
        group.protocol_name = group.select_protocol()
        if group.leader_id not in group.members:
            joined = [m.member_id for m in group.members.values() if m.awaiting_join]
            group.leader_id = joined[0] if joined else next(iter(group.members))
        group.transition(GroupState.COMPLETING_REBALANCE, now)
        self.coordinator.log.info(
            "group %s: generation %d with %d member(s), protocol %s, leader %s",
            group.group_id, group.generation_id, len(group.members), group.protocol_name, group.leader_id,
        )
        for m in group.members.values():
            m.is_new = False
            m.complete_join(group.join_result(m))
            self.schedule_expiry(group, m)
        rebalance_timeout = max(m.rebalance_timeout_ms for m in group.members.values())
        group.sync_timer = self._loop.call_later(
            rebalance_timeout / 1000, self._sync_expired, group, group.generation_id
        )

    def _sync_expired(self, group: ClassicGroup, generation: int) -> None:
        """Members that never sent SyncGroup in time are dropped, and the group rebalances."""
        group.sync_timer = None
        if group.state is not GroupState.COMPLETING_REBALANCE or group.generation_id != generation:
            return
        for m in list(group.members.values()):
            if not m.awaiting_sync:
                m.cancel_timer()
                del group.members[m.member_id]
                if m.group_instance_id is not None:
                    group.static_members.pop(m.group_instance_id, None)
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members), None)
        self.prepare_rebalance(group, "members did not sync in time")

    # -- JoinGroup ------------------------------------------------------------------

    async def join(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member_id: bool,
    ) -> JoinResult:
        if not group_id:
            return JoinResult(ErrorCode.INVALID_GROUP_ID, member_id)
        lo, hi = self._config("group.min.session.timeout.ms"), self._config("group.max.session.timeout.ms")
        if not lo <= session_timeout_ms <= hi:
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id)
        if rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms
        consumer_group = self.coordinator.migration.consumer_group_of(group_id)
        if consumer_group is not None:  # KIP-848 online migration: a classic member of a consumer group
            return self.coordinator.migration.join(
                consumer_group, member_id, group_instance_id, client_id, client_host, session_timeout_ms,
                rebalance_timeout_ms, protocol_type, protocols, require_known_member_id,
            )
        try:
            group = self._group(group_id)
        except KafkaError as exc:
            existing = self.coordinator.groups[group_id]
            if existing.group_type == "share":  # never converted (Kafka: GroupIdNotFoundException)
                return JoinResult(exc.code, member_id)
            if not existing.is_empty:
                return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
            group = self.coordinator.convert_to_classic(group_id)
        if group is None:
            if member_id:
                return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
            group = ClassicGroup(group_id, self._now_ms())
            self.coordinator.groups[group_id] = group
        if group.state is GroupState.DEAD:
            return JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id)
        if not group.supports(protocol_type, protocols):
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
        fields = (client_id, client_host, rebalance_timeout_ms, session_timeout_ms, protocol_type, protocols)
        if not member_id:
            return await self._join_unknown(group, group_instance_id, require_known_member_id, *fields)
        return await self._join_known(group, member_id, group_instance_id, *fields)

    def _full(self, group: ClassicGroup) -> bool:
        return len(group.members) + len(group.pending_members) >= self._config("group.max.size")

    def _wait_join(self, member: ClassicMember) -> asyncio.Future[JoinResult]:
        fut: asyncio.Future[JoinResult] = self._loop.create_future()
        member.join_waiters.append(fut)
        return fut

    async def _join_unknown(
        self,
        group: ClassicGroup,
        instance_id: str | None,
        require_known_member_id: bool,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
    ) -> JoinResult:
        new_id = self._new_member_id(client_id, instance_id)
        if instance_id is not None and instance_id in group.static_members:
            return await self._replace_static_member(
                group, instance_id, new_id, rebalance_timeout_ms, session_timeout_ms, protocols
            )
        if self._full(group):
            return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, "")
        if instance_id is None and require_known_member_id:
            # KIP-394: hand out the id and hold the rebalance until the member uses it.
            timer = self._loop.call_later(session_timeout_ms / 1000, self._expire_pending, group, new_id)
            group.pending_members[new_id] = timer
            return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, new_id)
        member = ClassicMember(
            new_id, instance_id, client_id, client_host, rebalance_timeout_ms, session_timeout_ms,
            protocol_type, list(protocols),
        )
        return await self._add_and_rebalance(group, member, "new member joined")

    async def _add_and_rebalance(self, group: ClassicGroup, member: ClassicMember, reason: str) -> JoinResult:
        self._add_member(group, member)
        waiter = self._wait_join(member)
        if group.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(group)
        else:
            self.prepare_rebalance(group, f"{reason}: {member.member_id}")
        return await waiter

    async def _replace_static_member(
        self,
        group: ClassicGroup,
        instance_id: str,
        new_id: str,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        protocols: list[tuple[str, bytes]],
    ) -> JoinResult:
        old_id = group.static_members[instance_id]
        member = group.members[old_id]
        member.complete_join(JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
        member.complete_sync(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        unchanged = member.protocols == list(protocols)
        del group.members[old_id]
        member.member_id = new_id
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        member.protocols = list(protocols)
        group.members[new_id] = member
        group.static_members[instance_id] = new_id
        if group.leader_id == old_id:
            group.leader_id = new_id
        self.schedule_expiry(group, member)
        self.coordinator.log.info(
            "group %s: static member %s rejoined as %s (was %s)", group.group_id, instance_id, new_id, old_id
        )
        if group.state is GroupState.STABLE and unchanged:
            # shielded: the revert below must happen even if the member hangs up
            return await asyncio.shield(self._store_static_member(group, member, instance_id, old_id, new_id))
        waiter = self._wait_join(member)
        if group.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(group)
        else:
            self.prepare_rebalance(group, f"static member {instance_id} rejoined with new metadata")
        return await waiter

    async def _store_static_member(
        self, group: ClassicGroup, member: ClassicMember, instance_id: str, old_id: str, new_id: str
    ) -> JoinResult:
        """Kafka's updateStaticMemberAndRebalance without a rebalance: the group record
        with the new member id is written and, once the ISR has it, the member gets its
        old assignment under its new id. If the write fails, the member id is reverted
        and the JoinGroup answered with the (mapped) error, as Kafka does."""
        code = self.coordinator.store_group(group)
        if code is ErrorCode.NONE:
            code = await self.coordinator.replicated(group.group_id)
        if code is ErrorCode.NONE:
            return group.join_result(member, skip_assignment=member.member_id == group.leader_id)
        self.coordinator.log.warning("group %s: static member %s not stored (%s); reverted to %s",
                                     group.group_id, instance_id, code.name, old_id)
        if group.members.get(new_id) is member and group.static_members.get(instance_id) == new_id:
            del group.members[new_id]
            member.member_id = old_id
            group.members[old_id] = member
            group.static_members[instance_id] = old_id
            if group.leader_id == new_id:
                group.leader_id = old_id
            self.schedule_expiry(group, member)
        return JoinResult(code, "")

    async def _join_known(
        self,
        group: ClassicGroup,
        member_id: str,
        instance_id: str | None,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
    ) -> JoinResult:
        if member_id in group.pending_members:
            timer = group.pending_members.pop(member_id)
            if timer is not None:
                timer.cancel()
            member = ClassicMember(
                member_id, instance_id, client_id, client_host, rebalance_timeout_ms, session_timeout_ms,
                protocol_type, list(protocols),
            )
            return await self._add_and_rebalance(group, member, "pending member joined")
        if instance_id is not None:
            registered = group.static_members.get(instance_id)
            if registered is not None and registered != member_id:
                return JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id)
        member = group.members.get(member_id)
        if member is None or group.state in (GroupState.EMPTY, GroupState.DEAD):
            return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
        changed = member.protocols != list(protocols)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        member.client_id, member.client_host = client_id, client_host
        self.schedule_expiry(group, member)
        if group.state is GroupState.PREPARING_REBALANCE:
            member.protocols = list(protocols)
            waiter = self._wait_join(member)
            self._try_complete_join(group)
            return await waiter
        if group.state is GroupState.COMPLETING_REBALANCE and not changed:
            return group.join_result(member)
        if group.state is GroupState.STABLE and not changed and member_id != group.leader_id:
            return group.join_result(member)
        member.protocols = list(protocols)
        waiter = self._wait_join(member)
        self.prepare_rebalance(group, f"member {member_id} rejoined" + (" with new metadata" if changed else ""))
        return await waiter

    # -- SyncGroup ------------------------------------------------------------------

    def _validate_member(
        self, group: ClassicGroup | None, member_id: str, instance_id: str | None, generation_id: int | None
    ) -> ClassicMember:
        if group is None or group.state is GroupState.DEAD:
            raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
        if instance_id is not None:
            registered = group.static_members.get(instance_id)
            if registered is not None and registered != member_id:
                raise KafkaError(ErrorCode.FENCED_INSTANCE_ID)
        member = group.members.get(member_id)
        if member is None:
            raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
        if generation_id is not None and generation_id != group.generation_id:
            raise KafkaError(ErrorCode.ILLEGAL_GENERATION)
        return member

    async def sync(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation_id: int,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResult:
        consumer_group = self.coordinator.migration.consumer_group_of(group_id)
        if consumer_group is not None:
            return self.coordinator.migration.sync(
                consumer_group, member_id, instance_id, generation_id, protocol_type, protocol_name
            )
        try:
            group = self._group(group_id)
            member = self._validate_member(group, member_id, instance_id, generation_id)
        except KafkaError as exc:
            return SyncResult(exc.code)
        assert group is not None
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        if group.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        if group.state is GroupState.STABLE:
            self.schedule_expiry(group, member)
            return SyncResult(ErrorCode.NONE, member.assignment, group.protocol_type, group.protocol_name)
        if group.state is not GroupState.COMPLETING_REBALANCE:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        fut: asyncio.Future[SyncResult] = self._loop.create_future()
        member.sync_waiters.append(fut)
        self.schedule_expiry(group, member)
        if member_id == group.leader_id and (group.group_id, group.generation_id) not in self._storing:
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
            if group.sync_timer is not None:
                group.sync_timer.cancel()
                group.sync_timer = None
            # a task of its own: the group completes even if the leader hangs up
            key = (group.group_id, group.generation_id)
            self._storing.add(key)
            stored = self._loop.create_task(self._store_assignment(group, group.generation_id))
            stored.add_done_callback(lambda _: self._storing.discard(key))
        return await fut

    async def _store_assignment(self, group: ClassicGroup, generation: int) -> None:
        """Kafka's SyncGroup completion: the group record with the leader's assignment
        is written to ``__consumer_offsets`` and, once the partition's ISR has it, every
        member gets its assignment and the group is Stable. If the write fails, every
        waiting member gets the error as Kafka maps it (COORDINATOR_NOT_AVAILABLE after
        ``offsets.commit.timeout.ms``, NOT_COORDINATOR when the leadership moved) and
        the group rebalances again."""
        code = self.coordinator.store_group(group)
        if code is ErrorCode.NONE:
            try:
                code = await self.coordinator.replicated(group.group_id)
            except Exception:
                self.coordinator.log.exception("group %s: waiting for the group record failed", group.group_id)
                code = ErrorCode.COORDINATOR_NOT_AVAILABLE
        current = self.coordinator.groups.get(group.group_id)
        if current is not group or group.state is not GroupState.COMPLETING_REBALANCE or group.generation_id != generation:
            return  # unloaded (members told NOT_COORDINATOR) or moved on meanwhile
        if code is not ErrorCode.NONE:
            self.coordinator.log.warning("group %s: generation %d not stored (%s)", group.group_id, generation, code.name)
            for m in group.members.values():
                m.assignment = b""
                m.complete_sync(SyncResult(code))
            self.prepare_rebalance(group, f"error when storing the group assignment ({code.name})")
            return
        group.transition(GroupState.STABLE, self._now_ms())
        for m in group.members.values():
            m.complete_sync(SyncResult(ErrorCode.NONE, m.assignment, group.protocol_type, group.protocol_name))
            self.schedule_expiry(group, m)

    # -- Heartbeat and LeaveGroup ------------------------------------------------------

    def heartbeat(self, group_id: str, member_id: str, instance_id: str | None, generation_id: int) -> ErrorCode:
        consumer_group = self.coordinator.migration.consumer_group_of(group_id)
        if consumer_group is not None:
            return self.coordinator.migration.heartbeat(consumer_group, member_id, instance_id, generation_id)
        try:
            group = self._group(group_id)
            if group is not None and group.state is GroupState.EMPTY:
                raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
            member = self._validate_member(group, member_id, instance_id, None)
        except KafkaError as exc:
            return exc.code
        assert group is not None
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        self.schedule_expiry(group, member)
        if group.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(self, group_id: str, leaving: list[tuple[str, str | None]]) -> tuple[ErrorCode, list[ErrorCode]]:
        """Remove members; one error per (member id, instance id), plus the group's."""
        consumer_group = self.coordinator.migration.consumer_group_of(group_id)
        if consumer_group is not None:
            return self.coordinator.migration.leave(consumer_group, leaving)
        try:
            group = self._group(group_id)
        except KafkaError as exc:
            return exc.code, [exc.code for _ in leaving]
        if group is None:  # as Kafka: no group-level error, each member unknown (v0-2: the member's)
            return ErrorCode.NONE, [ErrorCode.UNKNOWN_MEMBER_ID for _ in leaving]
        errors = []
        for member_id, instance_id in leaving:
            if instance_id is not None:
                registered = group.static_members.get(instance_id)
                if registered is None:
                    errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
                    continue
                if member_id and member_id != registered:
                    errors.append(ErrorCode.FENCED_INSTANCE_ID)
                    continue
                member_id = registered
            if member_id in group.pending_members:
                timer = group.pending_members.pop(member_id)
                if timer is not None:
                    timer.cancel()
                errors.append(ErrorCode.NONE)
                if group.state is GroupState.PREPARING_REBALANCE:
                    self._try_complete_join(group)
                continue
            member = group.members.get(member_id)
            if member is None:
                errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
                continue
            self.coordinator.log.info("group %s: member %s left", group_id, member_id)
            self.remove_member(group, member, "leave")
            errors.append(ErrorCode.NONE)
        return ErrorCode.NONE, errors

    # -- loading ---------------------------------------------------------------------

    def restore(self, group_id: str, value: GroupValue) -> ClassicGroup:
        """A group as its last GroupMetadataValue left it; members get fresh sessions."""
        group = ClassicGroup(group_id, value.current_state_timestamp if value.current_state_timestamp >= 0 else self._now_ms())
        group.generation_id = value.generation
        group.protocol_type = value.protocol_type or None
        group.protocol_name = value.protocol
        group.leader_id = value.leader
        for mv in value.members:
            member = ClassicMember(
                mv.member_id, mv.group_instance_id, mv.client_id, mv.client_host, mv.rebalance_timeout,
                mv.session_timeout, value.protocol_type, [(value.protocol or "", mv.subscription)], mv.assignment,
            )
            group.members[mv.member_id] = member
            if mv.group_instance_id is not None:
                group.static_members[mv.group_instance_id] = mv.member_id
        group.state = GroupState.STABLE if group.members else GroupState.EMPTY
        return group

    def arm_restored(self, group: ClassicGroup) -> None:
        for member in group.members.values():
            self.schedule_expiry(group, member)

    def shutdown(self, group: ClassicGroup) -> None:
        for m in group.members.values():
            m.cancel_timer()
            m.complete_join(JoinResult(ErrorCode.NOT_COORDINATOR, m.member_id))
            m.complete_sync(SyncResult(ErrorCode.NOT_COORDINATOR))
        for timer in (group.join_timer, group.sync_timer, *group.pending_members.values()):
            if timer is not None:
                timer.cancel()
