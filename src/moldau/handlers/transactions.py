"""Transaction APIs: AddPartitionsToTxn (24), AddOffsetsToTxn (25), EndTxn (26),
TxnOffsetCommit (28), DescribeTransactions (65) and ListTransactions (66).
InitProducerId (22) is in :mod:`moldau.handlers.producer`.

Glue only: requests become calls on the broker's
:class:`~moldau.coordinator.transaction.TransactionCoordinator` (TxnOffsetCommit on the
group coordinator) and answers become responses. KIP-588's PRODUCER_FENCED is sent
only to the versions that know it (AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v2+,
TxnOffsetCommit v3+, InitProducerId v4+); older ones get INVALID_PRODUCER_EPOCH, as
Kafka answers them. Transaction protocol version 2 (KIP-890 part 2) is not advertised,
so clients use version 1: EndTxn v5 answers with the unchanged producer id and epoch.
"""

from __future__ import annotations

from typing import Any

from moldau.coordinator.group import OFFSETS_TOPIC, OffsetCommit
from moldau.handlers import authorize as authz
from moldau.handlers.offsets import commit_too_large
from moldau.handlers.pacing import Pacer, paced
from moldau.handlers.registry import codec_for, handles
from moldau.handlers.txn_verify import RETRIABLE_VERIFICATION, VERIFICATION_ENABLE
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS

ADD_PARTITIONS_TO_TXN = ALL_APIS[24]
ADD_OFFSETS_TO_TXN = ALL_APIS[25]
END_TXN = ALL_APIS[26]
TXN_OFFSET_COMMIT = ALL_APIS[28]
DESCRIBE_TRANSACTIONS = ALL_APIS[65]
LIST_TRANSACTIONS = ALL_APIS[66]


def fenced_for(code: ErrorCode, version: int, first_version_with_fenced: int) -> ErrorCode:
    """PRODUCER_FENCED for versions that know it, INVALID_PRODUCER_EPOCH before."""
    if code is ErrorCode.PRODUCER_FENCED and version < first_version_with_fenced:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return code


# -- AddPartitionsToTxn ------------------------------------------------------------------

_add = codec_for(ADD_PARTITIONS_TO_TXN)
_AddTopic = _add.Response.of("results_by_topic_v3_and_below")
_AddPartition = _AddTopic.of("results_by_partition")
_AddTxn = _add.Response.of("results_by_transaction")


async def _add_one(
    broker: Any, version: int, txn_id: str, producer_id: int, epoch: int, topics: Any, verify_only: bool, pacer: Pacer,
    header: Any = None,
) -> list[Any]:
    """One transaction's partitions added (or verified): per-topic results."""
    coordinator = broker.transaction_coordinator
    partitions: list[tuple[str, int]] = []
    async for t in paced(topics, pacer):
        async for p in paced(t.partitions, pacer):
            partitions.append((t.name, p))
    errors: dict[tuple[str, int], ErrorCode] = {}
    unknown = {tp for tp in partitions if tp[0] not in broker.topics or tp[1] not in broker.topics[tp[0]].partitions}
    refused: dict[str, ErrorCode] = {}
    if header is not None and broker.authorizer is not None:
        # Kafka: WRITE on the transactional id, then on each topic; refused topics get
        # TOPIC_AUTHORIZATION_FAILED and the others OPERATION_NOT_ATTEMPTED
        txn_refused = authz.transactional_id_error(broker, header, txn_id)
        for topic, _ in partitions:
            code = txn_refused or authz.topic_error(broker, header, authz.WRITE, topic)
            if code is not None:
                refused[topic] = code
    if refused:
        errors = {tp: refused.get(tp[0], ErrorCode.OPERATION_NOT_ATTEMPTED) for tp in partitions}
    elif verify_only:
        errors = coordinator.verify_partitions(txn_id, producer_id, epoch, partitions)
    elif unknown:
        errors = {
            tp: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else ErrorCode.OPERATION_NOT_ATTEMPTED
            for tp in partitions
        }
    elif not txn_id:
        errors = {tp: ErrorCode.INVALID_REQUEST for tp in partitions}
    else:
        code = await coordinator.add_partitions(txn_id, producer_id, epoch, partitions)
        errors = {tp: code for tp in partitions}
    by_topic: dict[str, Any] = {}
    for (topic, index), code in errors.items():
        result = by_topic.get(topic)
        if result is None:
            result = by_topic[topic] = _AddTopic(name=topic, results_by_partition=[])
        result.results_by_partition.append(
            _AddPartition(partition_index=index, partition_error_code=int(fenced_for(code, version, 2)))
        )
    return list(by_topic.values())


@handles(ADD_PARTITIONS_TO_TXN, 0, 5)
async def add_partitions_to_txn(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    pacer = Pacer()
    if version <= 3:
        results = await _add_one(
            broker, version, request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
            request.v3_and_below_producer_epoch, request.v3_and_below_topics, False, pacer, header,
        )
        return _add.Response(throttle_time_ms=0, results_by_topic_v3_and_below=results)
    if authz.cluster_error(broker, header, authz.CLUSTER_ACTION) is not None:  # v4+: brokers only
        return _add.Response(throttle_time_ms=0, error_code=int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
                             results_by_transaction=[])
    transactions = []
    async for txn in paced(request.transactions, pacer):
        results = await _add_one(
            broker, version, txn.transactional_id, txn.producer_id, txn.producer_epoch, txn.topics, txn.verify_only, pacer
        )
        transactions.append(_AddTxn(transactional_id=txn.transactional_id, topic_results=results))
    return _add.Response(throttle_time_ms=0, error_code=0, results_by_transaction=transactions)


# -- AddOffsetsToTxn ---------------------------------------------------------------------

_add_offsets = codec_for(ADD_OFFSETS_TO_TXN)


@handles(ADD_OFFSETS_TO_TXN, 0, 4)
async def add_offsets_to_txn(broker: Any, header: Any, request: Any) -> Any:
    """The group's ``__consumer_offsets`` partition joins the transaction, so that the
    markers reach the group coordinator."""
    group_coordinator = broker.group_coordinator
    try:
        refused = authz.transactional_id_error(broker, header, request.transactional_id) or authz.group_error(
            broker, header, authz.READ, request.group_id)  # Kafka: WRITE on the id, READ on the group
        if refused is not None:
            raise KafkaError(refused)
        if not request.transactional_id:
            raise KafkaError(ErrorCode.INVALID_REQUEST)
        await group_coordinator.ensure_topic()
        partition = (OFFSETS_TOPIC, group_coordinator.partition_of(request.group_id))
        code = await broker.transaction_coordinator.add_partitions(
            request.transactional_id, request.producer_id, request.producer_epoch, [partition]
        )
    except KafkaError as exc:
        code = exc.code
    return _add_offsets.Response(throttle_time_ms=0, error_code=int(fenced_for(code, header.api_version, 2)))


# -- EndTxn ------------------------------------------------------------------------------

_end = codec_for(END_TXN)


@handles(END_TXN, 0, 5)
async def end_txn(broker: Any, header: Any, request: Any) -> Any:
    code = authz.transactional_id_error(broker, header, request.transactional_id)  # Kafka: WRITE on the id
    if code is None:
        code = await broker.transaction_coordinator.end_txn(
            request.transactional_id, request.producer_id, request.producer_epoch, request.committed
        )
    return _end.Response(
        throttle_time_ms=0,
        error_code=int(fenced_for(code, header.api_version, 2)),
        producer_id=request.producer_id,
        producer_epoch=request.producer_epoch,
    )


# -- TxnOffsetCommit ---------------------------------------------------------------------

_txn_commit = codec_for(TXN_OFFSET_COMMIT)
_TxnCommitTopic = _txn_commit.Response.of("topics")
_TxnCommitPartition = _TxnCommitTopic.of("partitions")


@handles(TXN_OFFSET_COMMIT, 0, 5)
async def txn_offset_commit(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    coordinator = broker.group_coordinator
    pacer = Pacer()
    commits: list[OffsetCommit] = []
    async for t in paced(request.topics, pacer):
        async for p in paced(t.partitions, pacer):
            commits.append(
                OffsetCommit(t.name, p.partition_index, p.committed_offset,
                             p.committed_leader_epoch if version >= 2 else -1, p.committed_metadata)
            )
    refused_topics: set[str] = set()
    try:
        if broker.authorizer is not None:
            # Kafka: WRITE on the transactional id, READ on the group, READ on each topic
            refused = authz.transactional_id_error(broker, header, request.transactional_id) or authz.group_error(
                broker, header, authz.READ, request.group_id)
            if refused is not None:
                raise KafkaError(refused)
            refused_topics = {c.topic for c in commits if authz.topic_error(broker, header, authz.READ, c.topic)}
            if refused_topics:
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        await coordinator.ready(request.group_id)
        if await commit_too_large(broker, request.group_id, commits, pacer):
            raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR)  # as OffsetCommit answers it
        await _verify(broker, request, coordinator.partition_of(request.group_id))
        errors = coordinator.txn_commit_offsets(
            request.group_id,
            request.producer_id,
            request.producer_epoch,
            request.generation_id if version >= 3 else -1,
            request.member_id if version >= 3 else "",
            request.group_instance_id if version >= 3 else None,
            commits,
        )
        errors = await coordinator.replicated_errors(request.group_id, errors)
    except KafkaError as exc:
        errors = [exc.code for _ in commits]
        if refused_topics:  # the refused topics say so, the others were not attempted
            errors = [exc.code if c.topic in refused_topics else ErrorCode.OPERATION_NOT_ATTEMPTED for c in commits]
    topics: dict[str, Any] = {}
    async for c, code in paced(zip(commits, errors, strict=True), pacer):
        topic = topics.get(c.topic)
        if topic is None:
            topic = topics[c.topic] = _TxnCommitTopic(name=c.topic, partitions=[])
        topic.partitions.append(
            _TxnCommitPartition(partition_index=c.partition, error_code=int(fenced_for(code, version, 3)))
        )
    return _txn_commit.Response(throttle_time_ms=0, topics=list(topics.values()))


async def _verify(broker: Any, request: Any, offsets_partition: int) -> None:
    """KIP-890's verification of a TxnOffsetCommit: the producer must be the id's
    current one, with the group's ``__consumer_offsets`` partition in its ongoing
    transaction (AddOffsetsToTxn first); otherwise its offsets would stay pending
    with no marker ever to come. Asked in-process when this broker coordinates the
    transactional id too (always on a single node), else of its coordinator over the
    wire (:class:`~moldau.broker.txn_verification.TxnVerifier`), whose transient
    answers become COORDINATOR_NOT_AVAILABLE (Kafka's answer to a commit it could not
    write), so the producer retries. ``transaction.partition.verification.enable``
    turns it off, as in Kafka."""
    if not broker.config.bool(VERIFICATION_ENABLE):
        return
    txn = broker.transaction_coordinator
    tp = (OFFSETS_TOPIC, offsets_partition)
    txn_id, producer_id, epoch = request.transactional_id, request.producer_id, request.producer_epoch
    try:
        txn.check_coordinator(txn_id)
    except KafkaError as exc:
        if exc.code is not ErrorCode.NOT_COORDINATOR:
            return  # no __transaction_state yet, or ours still loading: not checked
        code = (await broker.txn_verifier.verify(txn_id, producer_id, epoch, [tp])).get(
            tp, ErrorCode.NETWORK_EXCEPTION)
        if code in RETRIABLE_VERIFICATION:
            code = ErrorCode.COORDINATOR_NOT_AVAILABLE
        if code is not ErrorCode.NONE:
            raise KafkaError(code) from None
        return
    code = txn.verify_partitions(txn_id, producer_id, epoch, [tp])[tp]
    if code is not ErrorCode.NONE:
        raise KafkaError(code)


# -- DescribeTransactions / ListTransactions ---------------------------------------------

_describe = codec_for(DESCRIBE_TRANSACTIONS)
_DescribeState = _describe.Response.of("transaction_states")
_DescribeTopic = _DescribeState.of("topics")


@handles(DESCRIBE_TRANSACTIONS, 0, 0)
async def describe_transactions(broker: Any, header: Any, request: Any) -> Any:
    coordinator = broker.transaction_coordinator
    states = []
    async for txn_id in paced(request.transactional_ids):
        visible = authz.allowed(broker, header, authz.DESCRIBE, authz.TRANSACTIONAL_ID, txn_id)
        code, description = coordinator.describe(txn_id)
        if not visible:  # Kafka: DESCRIBE on the transactional id
            code, description = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None
        if description is None:
            states.append(_DescribeState(
                error_code=int(code), transactional_id=txn_id, transaction_state="", transaction_timeout_ms=0,
                transaction_start_time_ms=-1, producer_id=-1, producer_epoch=-1, topics=[],
            ))
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, index in description.partitions:
            by_topic.setdefault(topic, []).append(index)
        states.append(_DescribeState(
            error_code=0,
            transactional_id=txn_id,
            transaction_state=description.state,
            transaction_timeout_ms=description.timeout_ms,
            transaction_start_time_ms=description.start_ms,
            producer_id=description.producer_id,
            producer_epoch=description.producer_epoch,
            topics=[_DescribeTopic(topic=t, partitions=parts) for t, parts in by_topic.items()],
        ))
    return _describe.Response(throttle_time_ms=0, transaction_states=states)


_list = codec_for(LIST_TRANSACTIONS)
_ListState = _list.Response.of("transaction_states")


@handles(LIST_TRANSACTIONS, 0, 2)
async def list_transactions(broker: Any, header: Any, request: Any) -> Any:
    version = header.api_version
    code, unknown, found = broker.transaction_coordinator.list_transactions(
        list(request.state_filters),
        list(request.producer_id_filters),
        request.duration_filter if version >= 1 else -1,
        request.transactional_id_pattern if version >= 2 else None,
    )
    return _list.Response(
        throttle_time_ms=0,
        error_code=int(code),
        unknown_state_filters=unknown,
        transaction_states=[
            _ListState(transactional_id=d.transactional_id, producer_id=d.producer_id, transaction_state=d.state)
            for d in found  # Kafka lists only the ids one may DESCRIBE
            if authz.allowed(broker, header, authz.DESCRIBE, authz.TRANSACTIONAL_ID, d.transactional_id)
        ],
    )
