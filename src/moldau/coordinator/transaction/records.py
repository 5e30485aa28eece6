"""Kafka's record formats in ``__transaction_state``, encoded and decoded (sans-IO).

Theory of operation: one record per transactional id and change, keyed by
TransactionLogKey (an int16 key version, 0, then the id as an int16-length string);
the value is TransactionLogValue, an int16 schema version then the transaction's
metadata. A null value (tombstone) says the transactional id expired. The topic is
compacted, so the last record of each id is its state.

We write value version 0 (non-flexible), what Kafka writes for clients of transaction
protocol version 1, the only one served here; we read versions 0 and 1 (version 1 is
flexible: compact strings and arrays, tagged fields -- PreviousProducerId (tag 0),
NextProducerId (1), ClientTransactionVersion (2)), so a log Kafka 4 wrote loads too.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

KEY_VERSION = 0
VALUE_VERSION = 0


class RecordFormatError(ValueError):
    """The bytes are not a record of ``__transaction_state`` as Kafka writes them."""


class TxnState(enum.IntEnum):
    """Kafka's TransactionState, with the ids it stores in TransactionStatus."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        """The name DescribeTransactions and ListTransactions use (``Ongoing``, ...)."""
        return _NAMES[self]


_NAMES = {
    TxnState.EMPTY: "Empty",
    TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit",
    TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit",
    TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead",
    TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
STATE_BY_NAME = {name: state for state, name in _NAMES.items()}


@dataclass(slots=True)
class TxnLogValue:
    """TransactionLogValue: a transactional id's producer and its current transaction."""

    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: dict[str, list[int]] = field(default_factory=dict)
    last_update_ms: int = -1
    start_ms: int = -1
    previous_producer_id: int = -1
    next_producer_id: int = -1
    client_transaction_version: int = 0


def encode_key(transactional_id: str) -> bytes:
    data = transactional_id.encode()
    return _I16.pack(KEY_VERSION) + _I16.pack(len(data)) + data


def decode_key(data: bytes) -> str:
    if len(data) < 4:
        raise RecordFormatError("transaction log key too short")
    (version,) = _I16.unpack_from(data, 0)
    if version != KEY_VERSION:
        raise RecordFormatError(f"unknown transaction log key version {version}")
    (length,) = _I16.unpack_from(data, 2)
    if length < 0 or 4 + length != len(data):
        raise RecordFormatError("transaction log key length does not match")
    return bytes(data[4:]).decode()


def encode_value(value: TxnLogValue) -> bytes:
    """TransactionLogValue v0. Kafka writes a null partition array for Empty, the
    (possibly empty) partitions otherwise."""
    out = bytearray(_I16.pack(VALUE_VERSION))
    out += _I64.pack(value.producer_id)
    out += _I16.pack(value.producer_epoch)
    out += _I32.pack(value.timeout_ms)
    out += _I8.pack(int(value.state))
    if value.state is TxnState.EMPTY and not value.partitions:
        out += _I32.pack(-1)
    else:
        out += _I32.pack(len(value.partitions))
        for topic, parts in value.partitions.items():
            name = topic.encode()
            out += _I16.pack(len(name)) + name
            out += _I32.pack(len(parts))
            for p in parts:
                out += _I32.pack(p)
    out += _I64.pack(value.last_update_ms)
    out += _I64.pack(value.start_ms)
    return bytes(out)


class _Reader:
    __slots__ = ("data", "pos", "flexible")

    def __init__(self, data: bytes, pos: int, flexible: bool) -> None:
        self.data = data
        self.pos = pos
        self.flexible = flexible

    def _take(self, st: struct.Struct) -> int:
        if self.pos + st.size > len(self.data):
            raise RecordFormatError("transaction log value truncated")
        (v,) = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return v

    def i8(self) -> int:
        return self._take(_I8)

    def i16(self) -> int:
        return self._take(_I16)

    def i32(self) -> int:
        return self._take(_I32)

    def i64(self) -> int:
        return self._take(_I64)

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data) or shift > 28:
                raise RecordFormatError("bad varint in transaction log value")
            b = self.data[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def length(self) -> int:
        """An array's or string's length; -1 for null."""
        if self.flexible:
            return self.uvarint() - 1
        return self.i32()

    def string(self) -> str:
        n = self.uvarint() - 1 if self.flexible else self.i16()
        if n < 0 or self.pos + n > len(self.data):
            raise RecordFormatError("bad string in transaction log value")
        s = bytes(self.data[self.pos : self.pos + n]).decode()
        self.pos += n
        return s

    def skip_tags(self) -> dict[int, bytes]:
        if not self.flexible:
            return {}
        tags: dict[int, bytes] = {}
        for _ in range(self.uvarint()):
            tag, size = self.uvarint(), self.uvarint()
            tags[tag] = bytes(self.data[self.pos : self.pos + size])
            self.pos += size
        return tags


def decode_value(data: bytes) -> TxnLogValue:
    if len(data) < 2:
        raise RecordFormatError("transaction log value too short")
    (version,) = _I16.unpack_from(data, 0)
    if version not in (0, 1):
        raise RecordFormatError(f"unknown transaction log value version {version}")
    r = _Reader(data, 2, flexible=version >= 1)
    producer_id = r.i64()
    producer_epoch = r.i16()
    timeout_ms = r.i32()
    try:
        state = TxnState(r.i8())
    except ValueError as exc:
        raise RecordFormatError(str(exc)) from None
    partitions: dict[str, list[int]] = {}
    count = r.length()
    for _ in range(max(count, 0)):
        topic = r.string()
        parts = [r.i32() for _ in range(max(r.length(), 0))]
        r.skip_tags()
        partitions.setdefault(topic, []).extend(parts)
    last_update_ms = r.i64()
    start_ms = r.i64()
    tags = r.skip_tags()
    value = TxnLogValue(producer_id, producer_epoch, timeout_ms, state, partitions, last_update_ms, start_ms)
    if 0 in tags and len(tags[0]) == 8:
        (value.previous_producer_id,) = _I64.unpack(tags[0])
    if 1 in tags and len(tags[1]) == 8:
        (value.next_producer_id,) = _I64.unpack(tags[1])
    if 2 in tags and len(tags[2]) == 2:
        (value.client_transaction_version,) = _I16.unpack(tags[2])
    return value
