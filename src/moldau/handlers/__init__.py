"""One module per API family: glue between the protocol and the broker's domain.

Importing this package registers every handler; ApiVersions advertises exactly those.
"""

from moldau.handlers import (  # noqa: F401 - imported for registration
    alter_configs,
    api_versions,
    cluster,
    configs,
    consumer_group,
    delete_records,
    describe_producers,
    fetch,
    groups,
    leader_epoch,
    list_offsets,
    log_dirs,
    metadata,
    offsets,
    produce,
    producer,
    reassignments,
    topics,
    transactions,
    write_txn_markers,
)
from moldau.handlers.registry import HANDLERS, Dispatcher

__all__ = ["HANDLERS", "Dispatcher"]
