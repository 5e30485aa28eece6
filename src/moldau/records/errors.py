"""Errors raised by :mod:`moldau.records`.

Each class corresponds to exactly one Kafka error code, so a handler can turn an
exception into a response without inspecting its message:

- :class:`CorruptRecordError`: ``CORRUPT_MESSAGE`` (2)
- :class:`RecordTooLargeError`: ``MESSAGE_TOO_LARGE`` (10)
- :class:`UnsupportedCompressionError`: ``UNSUPPORTED_COMPRESSION_TYPE`` (76)
- :class:`InvalidRecordError`: ``INVALID_RECORD`` (87)

They derive from :class:`ValueError` because every one of them means "these bytes
are not acceptable", never "the broker is broken"; code that does not care about
the Kafka mapping can catch ``ValueError`` (or :class:`RecordsError`).
"""

from __future__ import annotations

__all__ = [
    "CorruptRecordError",
    "InvalidRecordError",
    "RecordTooLargeError",
    "RecordsError",
    "UnsupportedCompressionError",
]


class RecordsError(ValueError):
    """Base class: the bytes handed to :mod:`moldau.records` cannot be accepted."""

    #: The Kafka error code this exception maps to (see the module docstring).
    error_code: int = -1


class CorruptRecordError(RecordsError):
    """Kafka ``CORRUPT_MESSAGE``: bad CRC, bad magic, impossible lengths, truncation.

    The bytes are not a well-formed record batch; no amount of configuration would
    make the broker accept them.
    """

    error_code = 2


class InvalidRecordError(RecordsError):
    """Kafka ``INVALID_RECORD``: well-formed, but refused by the log's rules.

    Examples: a keyless record for a compacted topic, a record count that does not
    match the batch's offset range, a control batch written by a client.
    """

    error_code = 87


class RecordTooLargeError(RecordsError):
    """Kafka ``MESSAGE_TOO_LARGE``: a batch is larger than ``max.message.bytes``."""

    error_code = 10


class UnsupportedCompressionError(RecordsError):
    """Kafka ``UNSUPPORTED_COMPRESSION_TYPE``: the codec id is not one we know (> 4)."""

    error_code = 76
