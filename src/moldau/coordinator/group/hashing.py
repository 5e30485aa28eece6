"""Which ``__consumer_offsets`` partition holds a group: Kafka's choice, bit for bit.

Kafka picks ``Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions``, where
``hashCode`` is Java's ``String.hashCode`` (31-based, over UTF-16 code units, wrapping
at 32 bits) and ``Utils.abs`` maps ``Integer.MIN_VALUE`` to 0. Matching it exactly
keeps a data directory's group placement the same as Kafka's would be, which matters
for tools that read ``__consumer_offsets`` and for a later migration.
"""

from __future__ import annotations

_INT_MIN = -(2**31)


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode()``: a signed 32-bit int."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def java_abs(n: int) -> int:
    """Kafka's ``Utils.abs``: like ``Math.abs`` but ``Integer.MIN_VALUE`` becomes 0."""
    return 0 if n == _INT_MIN else abs(n)


def partition_for(group_id: str, num_partitions: int) -> int:
    """The ``__consumer_offsets`` partition of ``group_id``."""
    return java_abs(java_string_hash(group_id)) % num_partitions
