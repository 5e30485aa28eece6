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
    fetch,
    groups,
    leader_epoch,
    list_offsets,
    metadata,
    offsets,
    produce,
    producer,
    topics,
    transactions,
)
from moldau.handlers.registry import HANDLERS, Dispatcher

__all__ = ["HANDLERS", "Dispatcher"]
