"""Cheap looks into a request before it is decoded, to judge what decoding will cost.

Decoding costs about a microsecond per array entry (more on a busy machine), and a
request of ``socket.request.max.bytes`` (100 MiB) can hold tens of millions of entries:
seconds of work. The dispatcher decodes large frames in a worker thread for that
reason, but a Produce frame is usually large *and* cheap (a few partitions, each one
slice of record data) and is on the hot path, where a trip to a thread costs more than
the decoding. :func:`produce_entries` tells the two apart by counting the topic and
partition entries of a Produce request, skipping record data by its length and stopping
as soon as the count passes ``limit``, so it costs at most ``limit`` small steps.
"""

from __future__ import annotations

import struct
from typing import Any

from moldau.protocol import primitives as p
from moldau.protocol.errors import ProtocolDecodeError


def _skip_tagged_fields(buf: Any, pos: int) -> int:
    count, pos = p.read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = p.read_uvarint(buf, pos)
        size, pos = p.read_uvarint(buf, pos)
        pos += size
    return pos


def produce_entries(buf: Any, pos: int, version: int, flexible: bool, limit: int) -> int:
    """Topic and partition entries of the Produce request body at ``pos``, counted up
    to just past ``limit``. A body whose structure cannot be walked counts as past
    ``limit``; record data is skipped by its length, not checked, so a truncated body
    may also count low -- either way the real decoder refuses it, wherever it runs."""
    try:
        return _count(buf, pos, version, flexible, limit)
    except (IndexError, ValueError, struct.error, ProtocolDecodeError):
        return limit + 1


def _count(buf: Any, pos: int, version: int, flexible: bool, limit: int) -> int:
    i16 = p.I16.unpack_from
    i32 = p.I32.unpack_from
    if flexible:
        length, pos = p.read_uvarint(buf, pos)
        pos += max(length - 1, 0)  # transactional_id
        pos += 6  # acks, timeout_ms
        topics, pos = p.read_uvarint(buf, pos)
        topics -= 1
    else:
        if version >= 3:
            (length,) = i16(buf, pos)
            pos += 2 + max(length, 0)
        pos += 6
        (topics,) = i32(buf, pos)
        pos += 4
    entries = 0
    for _ in range(max(topics, 0)):
        entries += 1
        if entries > limit:
            return entries
        if version >= 13:
            pos += 16  # topic_id
        elif flexible:
            length, pos = p.read_uvarint(buf, pos)
            pos += max(length - 1, 0)
        else:
            (length,) = i16(buf, pos)
            pos += 2 + max(length, 0)
        if flexible:
            partitions, pos = p.read_uvarint(buf, pos)
            partitions -= 1
        else:
            (partitions,) = i32(buf, pos)
            pos += 4
        for _ in range(max(partitions, 0)):
            entries += 1
            if entries > limit:
                return entries
            pos += 4  # index
            if flexible:
                length, pos = p.read_uvarint(buf, pos)
                pos += max(length - 1, 0)
                pos = _skip_tagged_fields(buf, pos)
            else:
                (length,) = i32(buf, pos)
                pos += 4 + max(length, 0)
        if flexible:
            pos = _skip_tagged_fields(buf, pos)
    return entries
