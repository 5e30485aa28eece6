"""moldau.storage: Kafka's on-disk log.

One module per artefact, each documenting its file format and thread-safety:

- :mod:`.config`: :class:`LogConfig`, topic-level settings with Kafka's names.
- :mod:`.segment`: :class:`LogSegment`, a ``.log`` file of record batches.
- :mod:`.offset_index`, :mod:`.time_index`: the sparse ``.index``/``.timeindex``.
- :mod:`.log`: :class:`Log`, one partition: appends, reads, flush, recovery.
- :mod:`.log_manager`: :class:`LogManager`, every log of a data directory.
- :mod:`.checkpoint`: checkpoint files and the clean-shutdown marker.
- :mod:`.file_cache`: :class:`FileCache` of open handles and :class:`FileSlice`.
- :mod:`.errors`: exceptions with their Kafka error codes.

The storage layer knows nothing of the network or of replication.
"""

from moldau.storage.config import LogConfig
from moldau.storage.errors import (
    CorruptCheckpointError,
    CorruptIndexError,
    KafkaStorageError,
    OffsetOutOfRangeError,
    StorageError,
)
from moldau.storage.file_cache import FileCache, FileSlice
from moldau.storage.log import AppendInfo, Log, LogReadInfo
from moldau.storage.log_manager import LogManager
from moldau.storage.segment import LogSegment

__all__ = [
    "AppendInfo",
    "CorruptCheckpointError",
    "CorruptIndexError",
    "FileCache",
    "FileSlice",
    "KafkaStorageError",
    "Log",
    "LogConfig",
    "LogManager",
    "LogReadInfo",
    "LogSegment",
    "OffsetOutOfRangeError",
    "StorageError",
]
