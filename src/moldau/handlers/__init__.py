"""One module per API family: glue between the protocol and the broker's domain.

Importing this package registers every handler; ApiVersions advertises exactly those.
"""

from moldau.handlers import (  # noqa: F401 - imported for registration
    acls,
    alter_configs,
    api_versions,
    client_quotas,
    cluster,
    configs,
    consumer_group,
    delete_records,
    describe_producers,
    describe_topic_partitions,
    fetch,
    groups,
    leader_epoch,
    list_config_resources,
    list_offsets,
    log_dirs,
    metadata,
    offsets,
    produce,
    producer,
    reassignments,
    sasl,
    scram_credentials,
    share_fetch,
    share_group,
    share_offsets,
    share_state,
    telemetry,
    topics,
    transactions,
    write_txn_markers,
)
from moldau.handlers.registry import HANDLERS, Dispatcher

__all__ = ["HANDLERS", "Dispatcher"]
