"""The log cleaner's fixed-size map from key hashes to their latest offsets.

Why fixed-size: the cleaner must run with bounded memory however many keys a log
holds. Like Kafka's ``SkimpyOffsetMap`` this is one preallocated buffer of slots,
``log.cleaner.dedupe.buffer.size`` bytes in total, never a growing dict. A slot is
24 bytes::

    hash:   16 bytes   MD5 of the record key (all zero: the slot is free)
    offset: int64      big-endian, the largest offset seen for that key

Keys are never stored, only their MD5: two keys colliding on 128 bits would make
the cleaner drop the older one's record, a risk Kafka accepts too. Collisions of
slot numbers are resolved by linear probing. The map is "full" at
``log.cleaner.io.buffer.load.factor`` of its slots; the cleaner then stops adding
keys and cleans the part of the log mapped so far, leaving the rest for the next
pass (:attr:`OffsetMap.latest_offset` tells where mapping stopped).

Thread-safety: none; each cleaner thread owns its map.
"""

from __future__ import annotations

import hashlib
import mmap
import struct

__all__ = ["SLOT_SIZE", "OffsetMap"]

HASH_SIZE = 16
#: Bytes per slot: the MD5 of a key and an int64 offset.
SLOT_SIZE = HASH_SIZE + 8
_EMPTY = bytes(HASH_SIZE)
_OFFSET = struct.Struct(">q")
_md5 = hashlib.md5


class OffsetMap:
    """Key hash -> latest offset in ``memory`` bytes (see module docstring)."""

    def __init__(self, memory: int, load_factor: float = 0.9) -> None:
        slots = memory // SLOT_SIZE
        if slots < 1 or int(slots * load_factor) < 1:
            raise ValueError(
                f"an offset map of {memory} bytes cannot hold a single key; "
                "raise log.cleaner.dedupe.buffer.size"
            )
        self.slots = slots
        self.load_factor = load_factor
        #: Keys that may be added before the map counts as full.
        self.capacity = int(slots * load_factor)
        # An anonymous mapping: its pages cost no memory until a cleaning pass touches
        # them, so an idle broker does not carry the whole dedupe buffer in its RSS
        # (a bytearray would be zero-filled, every page resident, at start-up).
        self._buf = mmap.mmap(-1, slots * SLOT_SIZE, flags=mmap.MAP_PRIVATE)
        self._size = 0
        #: The last offset the map covers (every record up to it was looked at); -1: none.
        self.latest_offset = -1
        #: Lookups and probes since the last clear, for statistics.
        self.lookups = 0
        self.probes = 0

    @property
    def size(self) -> int:
        """Distinct key hashes stored."""
        return self._size

    @property
    def full(self) -> bool:
        """True once :attr:`capacity` keys are stored."""
        return self._size >= self.capacity

    @property
    def utilization(self) -> float:
        """Fraction of the slots in use."""
        return self._size / self.slots

    def clear(self) -> None:
        """Forget every key and give the touched pages back to the system.

        ``MADV_DONTNEED`` on a private anonymous mapping drops its pages; they read as
        zeros again when next touched, which is exactly an empty map.
        """
        self._buf.madvise(mmap.MADV_DONTNEED)
        self._size = 0
        self.latest_offset = -1
        self.lookups = self.probes = 0

    @staticmethod
    def hash_key(key: bytes | memoryview) -> bytes:
        """The 16-byte digest the map stores for ``key``."""
        return _md5(key).digest()

    def put(self, key: bytes | memoryview, offset: int) -> None:
        """Record ``offset`` as the latest for ``key`` (offsets arrive increasing)."""
        digest = _md5(key).digest()
        buf = self._buf
        slots = self.slots
        slot = int.from_bytes(digest[:8], "big") % slots
        while True:
            pos = slot * SLOT_SIZE
            stored = buf[pos : pos + HASH_SIZE]
            if stored == digest:
                _OFFSET.pack_into(buf, pos + HASH_SIZE, offset)
                break
            if stored == _EMPTY:
                if self._size >= slots:  # pragma: no cover - capacity keeps a free slot
                    raise OverflowError("offset map has no free slot")
                buf[pos : pos + HASH_SIZE] = digest
                _OFFSET.pack_into(buf, pos + HASH_SIZE, offset)
                self._size += 1
                break
            slot += 1
            if slot == slots:
                slot = 0
        if offset > self.latest_offset:
            self.latest_offset = offset

    def get(self, key: bytes | memoryview) -> int:
        """The latest offset stored for ``key``, or -1 if the key is not in the map."""
        digest = _md5(key).digest()
        buf = self._buf
        slots = self.slots
        slot = int.from_bytes(digest[:8], "big") % slots
        self.lookups += 1
        while True:
            self.probes += 1
            pos = slot * SLOT_SIZE
            stored = buf[pos : pos + HASH_SIZE]
            if stored == digest:
                return _OFFSET.unpack_from(buf, pos + HASH_SIZE)[0]
            if stored == _EMPTY:
                return -1
            slot += 1
            if slot == slots:
                slot = 0

    def update_latest_offset(self, offset: int) -> None:
        """Note that every record up to ``offset`` has been looked at."""
        if offset > self.latest_offset:
            self.latest_offset = offset
