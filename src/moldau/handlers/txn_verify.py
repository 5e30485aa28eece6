"""KIP-890 part 1 at the partition leader: a transactional producer's first batch to a
partition in a transaction is appended only if the partition is in that transaction.

Without it, a batch that reaches a partition the producer never added (a client bug, or
a late retry of a batch from a transaction already ended) opens a transaction there
that no marker will ever close, and the partition's last stable offset stays behind it
until the producer is fenced. Kafka's leader asks the transaction coordinator with
AddPartitionsToTxn v4+ ``verify_only``. Here the coordinator is asked in-process when
this broker coordinates the transactional id (always on a single node), synchronously;
an id another broker coordinates is asked over the wire by the broker's
:class:`~moldau.broker.txn_verification.TxnVerifier`, batched per coordinator, and the
Produce handler appends those batches once the answer is in
(:func:`verified_errors`). ``transaction.partition.verification.enable`` (Kafka's
name, default true) turns both off.

The check costs one dict lookup per transactional batch: the coordinator is asked only
when the partition has no ongoing transaction of this producer yet. A failed check
answers INVALID_TXN_STATE (the producer's transaction really lacks the partition), and
the coordinator's transient answers (and a coordinator out of reach) become
NOT_ENOUGH_REPLICAS, as Kafka's ReplicaManager maps them, so that any producer retries
(without refreshing its metadata). Other answers (INVALID_PRODUCER_EPOCH,
INVALID_PRODUCER_ID_MAPPING) reach the producer as they are.

Not done, as in Kafka before its VerificationGuard: a transaction that ends at this
partition between the coordinator's answer and the append (a marker written meanwhile)
is not noticed; the window is one event-loop turn for in-process answers and one round
trip for remote ones.
"""

from __future__ import annotations

from typing import Any

from moldau.protocol.errors import ErrorCode, KafkaError

#: coordinator answers a producer should retry, as Kafka maps them for Produce
RETRIABLE_VERIFICATION = {
    ErrorCode.CONCURRENT_TRANSACTIONS,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_COORDINATOR,
    ErrorCode.NETWORK_EXCEPTION,
}
VERIFICATION_ENABLE = "transaction.partition.verification.enable"


def verify_first_append(broker: Any, transactional_id: str | None, partition: Any, head: Any) -> bool:
    """Check a transactional batch ``head`` that would open a transaction at
    ``partition``: raise its Produce error when this broker's coordinator refuses it;
    True when another broker's coordinator must be asked first (the caller defers the
    append), False when it may be appended now."""
    if transactional_id is None or not head.is_transactional:
        return False
    if head.producer_id in partition.log.txn_state.ongoing:
        return False  # already verified: the transaction is open here
    if not broker.config.bool(VERIFICATION_ENABLE):
        return False
    coordinator = broker.transaction_coordinator
    try:
        coordinator.check_coordinator(transactional_id)
    except KafkaError as exc:
        if exc.code is ErrorCode.NOT_COORDINATOR:
            return True  # another broker's id: asked over the wire
        if exc.code is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            raise_for(partition, transactional_id, exc.code)
        # no __transaction_state at all: no coordinator has ever added a partition;
        # left unverified as before (raw transactional batches of the log's tests)
        return False
    tp = (partition.topic, partition.index)
    code = coordinator.verify_partitions(transactional_id, head.producer_id, head.producer_epoch, [tp])[tp]
    raise_for(partition, transactional_id, code)
    return False


def raise_for(partition: Any, transactional_id: str, code: ErrorCode) -> None:
    """Raise the Produce error for a coordinator's answer ``code`` (none for NONE)."""
    exc = produce_error(partition.topic, partition.index, transactional_id, code)
    if exc is not None:
        raise exc


def produce_error(topic: str, index: int, transactional_id: str, code: ErrorCode) -> KafkaError | None:
    """The Produce error for a coordinator's verification answer, as Kafka maps it."""
    if code is ErrorCode.NONE:
        return None
    if code in RETRIABLE_VERIFICATION:
        return KafkaError(ErrorCode.NOT_ENOUGH_REPLICAS,
                          f"Unable to verify the partition has been added to the transaction: {code.name}")
    if code is ErrorCode.INVALID_TXN_STATE:
        return KafkaError(code, f"{topic}-{index} was not added to the transaction of {transactional_id}")
    return KafkaError(code)
