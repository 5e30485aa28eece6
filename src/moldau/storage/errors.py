"""Errors raised by :mod:`moldau.storage`.

Like :mod:`moldau.records.errors`, each class that a client can observe carries the
Kafka error code it maps to, so a handler turns an exception into a response
without parsing messages:

- :class:`OffsetOutOfRangeError`: ``OFFSET_OUT_OF_RANGE`` (1)
- :class:`KafkaStorageError`: ``KAFKA_STORAGE_ERROR`` (56)

Errors about our own files (a corrupt index, a malformed checkpoint) are
:class:`StorageError` subclasses without a client-facing meaning: the storage layer
repairs what it can (an index is rebuilt from its segment) and reports the rest.

Thread-safety: plain exception classes, nothing shared.
"""

from __future__ import annotations

__all__ = [
    "CorruptCheckpointError",
    "CorruptIndexError",
    "KafkaStorageError",
    "OffsetOutOfRangeError",
    "StorageError",
]


class StorageError(Exception):
    """Base class for storage failures."""

    #: The Kafka error code this maps to when a client sees it; -1 when it never should.
    error_code: int = -1


class OffsetOutOfRangeError(StorageError):
    """Kafka ``OFFSET_OUT_OF_RANGE``: the offset is below the log start or past the end.

    Carries the bounds so a fetch handler can log them or a follower can reset.
    """

    error_code = 1

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class KafkaStorageError(StorageError):
    """Kafka ``KAFKA_STORAGE_ERROR``: the disk failed under a request (EIO, ENOSPC, ...)."""

    error_code = 56


class DataDirLockedError(StorageError):
    """Another process holds the data directory's ``.lock``."""


class CorruptIndexError(StorageError):
    """An ``.index`` or ``.timeindex`` file is inconsistent; the caller rebuilds it."""


class CorruptCheckpointError(StorageError):
    """A checkpoint file does not follow Kafka's text format."""
