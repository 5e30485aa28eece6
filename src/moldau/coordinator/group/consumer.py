"""KIP-848 consumer groups (placeholder until the next step)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from moldau.protocol.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from moldau.coordinator.group.coordinator import GroupCoordinator


class ConsumerGroup:
    group_type = "consumer"
    state_name = "Empty"
    is_empty = True

    def subscribed_topic_names(self) -> set[str]:
        return set()


class ConsumerGroupManager:
    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator

    def shutdown(self, group: ConsumerGroup) -> None:
        pass

    def validate_offset_fetch(self, group_id: str, member_id: str, epoch: int) -> None:
        pass

    def describe_as_classic(self, group: ConsumerGroup, answer: object, member_class: object) -> object:
        return answer

    def validate_commit(self, group: ConsumerGroup, member_id: str, epoch: int) -> None:
        raise KafkaError(ErrorCode.UNKNOWN_MEMBER_ID)
