"""Consumer groups: the classic protocol and KIP-848's, offsets in ``__consumer_offsets``."""

from moldau.coordinator.group.coordinator import OFFSETS_TOPIC, GroupCoordinator, OffsetCommit

__all__ = ["OFFSETS_TOPIC", "GroupCoordinator", "OffsetCommit"]
