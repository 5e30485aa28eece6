"""KIP-890 part 1 at the partition leader: a transactional producer's first batch to a
partition in a transaction is appended only if the partition is in that transaction.

Without it, a batch that reaches a partition the producer never added (a client bug, or
a late retry of a batch from a transaction already ended) opens a transaction there
that no marker will ever close, and the partition's last stable offset stays behind it
until the producer is fenced. Kafka's leader asks the transaction coordinator with
AddPartitionsToTxn v4+ ``verify_only``; here the coordinator is asked in-process when
this broker coordinates the transactional id (always on a single node); another
broker's ids are not verified (the answer over the wire is future work).

The check costs one dict lookup per transactional batch: the coordinator is asked only
when the partition has no ongoing transaction of this producer yet. A failed check
answers INVALID_TXN_STATE (the producer's transaction really lacks the partition), and
the coordinator's transient answers become NOT_ENOUGH_REPLICAS, as Kafka's
AddPartitionsToTxnManager maps them, so that any producer retries.
"""

from __future__ import annotations

from typing import Any

from moldau.protocol.errors import ErrorCode, KafkaError

#: coordinator answers a producer should retry, as Kafka maps them for Produce
_RETRIABLE = {
    ErrorCode.CONCURRENT_TRANSACTIONS,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_COORDINATOR,
}


def verify_first_append(broker: Any, transactional_id: str | None, partition: Any, head: Any) -> None:
    """Raise the Produce error for a transactional batch ``head`` that would open a
    transaction at ``partition`` which the coordinator does not know of."""
    if transactional_id is None or not head.is_transactional:
        return
    producer_id = head.producer_id
    if producer_id in partition.log.txn_state.ongoing:
        return  # already verified: the transaction is open here
    coordinator = broker.transaction_coordinator
    try:
        coordinator.check_coordinator(transactional_id)
    except KafkaError:
        return  # another broker's id (or one not loaded yet): not verified here
    tp = (partition.topic, partition.index)
    code = coordinator.verify_partitions(transactional_id, producer_id, head.producer_epoch, [tp])[tp]
    if code is ErrorCode.NONE:
        return
    if code in _RETRIABLE:
        raise KafkaError(ErrorCode.NOT_ENOUGH_REPLICAS, f"transaction of {transactional_id} not verified: {code.name}")
    raise KafkaError(code, f"{partition.topic}-{partition.index} is not in the transaction of {transactional_id}")
