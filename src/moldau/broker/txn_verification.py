"""How a partition leader asks another broker's transaction coordinator whether a
partition is in a producer's transaction (KIP-890 part 1).

Theory of operation: :class:`TxnVerifier` is what Kafka's AddPartitionsToTxnManager is
to its ReplicaManager. The Produce handler (:mod:`moldau.handlers.txn_verify`) hands it
the partitions of a transactional producer's first batches that this broker cannot
check in-process (their transactional id is coordinated elsewhere); it finds the
coordinator as the leader of the id's ``__transaction_state`` partition in the
metadata image and sends AddPartitionsToTxn v4 with ``verify_only`` set, one request
per coordinator broker carrying every transactional id that waits for it. While a
request to a broker is in flight, the verifications for it queue up and go together in
the next one; one transactional id appears once per request (Kafka's coordinator
refuses a repeated one), so a second verification of the same producer joins the
queued one, and one of another epoch or producer replaces the older (which is told
INVALID_PRODUCER_EPOCH, as Kafka answers a fenced producer here).

Answers, as Kafka maps them (the Produce handler then maps them for producers):

* the coordinator's per-partition codes, PRODUCER_FENCED given as
  INVALID_PRODUCER_EPOCH (what producers expect at Produce);
* a top-level error for every partition, CLUSTER_AUTHORIZATION_FAILED given as
  INVALID_TXN_STATE (a producer must not see the brokers' own authorization);
* no coordinator known: COORDINATOR_NOT_AVAILABLE; no connection, a broken one or no
  answer within ``request.timeout.ms``: NETWORK_EXCEPTION.

Requests go over the inter-broker listener with its TLS and SASL settings, as
WriteTxnMarkers do (:mod:`moldau.broker.txn_markers`); the coordinator authorizes them
as CLUSTER_ACTION and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moldau.broker.peers import PeerClients
from moldau.coordinator.transaction import TXN_TOPIC
from moldau.ports import TopicPartition
from moldau.protocol.codec import codec_for
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

log = logging.getLogger(__name__)

ADD_PARTITIONS_TO_TXN = ALL_APIS[24]
#: the first version with batched, verify-only transactions (what Kafka's brokers send)
VERIFY_VERSION = 4
_Request = codec_for(ADD_PARTITIONS_TO_TXN).Request
_Transaction = _Request.of("transactions")
_Topic = _Transaction.of("topics")

Errors = dict[TopicPartition, ErrorCode]


@dataclass
class _Pending:
    """One transactional id's verification waiting for the next request to its coordinator."""

    producer_id: int
    producer_epoch: int
    partitions: set[TopicPartition] = field(default_factory=set)
    waiters: list[tuple[list[TopicPartition], asyncio.Future[Errors]]] = field(default_factory=list)

    def answer(self, errors: Errors) -> None:
        for wanted, waiter in self.waiters:
            if not waiter.done():
                waiter.set_result({tp: errors.get(tp, ErrorCode.NETWORK_EXCEPTION) for tp in wanted})


class TxnVerifier:
    """The leader's verifications for transactional ids other brokers coordinate."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._peers = PeerClients(broker, "txn-verifier", log)
        #: per coordinator broker: transactional id -> its queued verification
        self._queues: dict[int, dict[str, _Pending]] = {}

    async def close(self) -> None:
        await self._peers.stop_senders()
        for queue in self._queues.values():
            for pending in queue.values():
                for _, waiter in pending.waiters:
                    if not waiter.done():
                        waiter.cancel()
        self._queues.clear()
        await self._peers.close()

    def coordinator_of(self, transactional_id: str) -> int | None:
        """The broker leading the id's ``__transaction_state`` partition, if it is alive."""
        record = self.broker.topics.get(TXN_TOPIC)
        if record is None:
            return None
        state = record.partitions.get(self.broker.transaction_coordinator.partition_of(transactional_id))
        if state is None or state.leader < 0:
            return None
        if not any(b.broker_id == state.leader for b in self.broker.live_brokers()):
            return None
        return state.leader

    async def verify(
        self, transactional_id: str, producer_id: int, producer_epoch: int, partitions: list[TopicPartition]
    ) -> Errors:
        """Each partition's answer from the coordinator of ``transactional_id``."""
        coordinator = self.coordinator_of(transactional_id)
        if coordinator is None:
            return {tp: ErrorCode.COORDINATOR_NOT_AVAILABLE for tp in partitions}
        if coordinator == self.broker.node_id:
            # the image names us, but the coordinator has not taken the partition yet
            return self.broker.transaction_coordinator.verify_partitions(
                transactional_id, producer_id, producer_epoch, partitions)
        waiter: asyncio.Future[Errors] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(coordinator, {})
        pending = queue.get(transactional_id)
        if pending is not None and (pending.producer_id, pending.producer_epoch) != (producer_id, producer_epoch):
            if pending.producer_id == producer_id and producer_epoch < pending.producer_epoch:
                return {tp: ErrorCode.INVALID_PRODUCER_EPOCH for tp in partitions}  # the older one is fenced
            pending.answer({tp: ErrorCode.INVALID_PRODUCER_EPOCH for tp in pending.partitions})
            pending = None
        if pending is None:
            pending = queue[transactional_id] = _Pending(producer_id, producer_epoch)
        pending.partitions.update(partitions)
        pending.waiters.append((list(partitions), waiter))
        self._peers.kick(coordinator, self._drain)
        return await waiter

    async def _drain(self, broker_id: int) -> None:
        """Send what is queued for ``broker_id``, one request at a time, until nothing is."""
        while True:
            queue = self._queues.pop(broker_id, {})
            queue = {t: p for t, p in queue.items() if any(not w.done() for _, w in p.waiters)}
            if not queue:
                return
            try:
                answers = await self._send(broker_id, queue)
            except Exception as exc:  # no waiter may be left hanging
                await self._peers.failed(broker_id, "AddPartitionsToTxn (verify)", exc)
                answers = {t: {tp: ErrorCode.NETWORK_EXCEPTION for tp in p.partitions} for t, p in queue.items()}
            for txn_id, pending in queue.items():
                pending.answer(answers.get(txn_id, {}))

    async def _send(self, broker_id: int, queue: dict[str, _Pending]) -> dict[str, Errors]:
        """One AddPartitionsToTxn v4 request with every queued id; answers by id."""
        client = await self._peers.get(broker_id)
        if client is None:
            return {t: {tp: ErrorCode.COORDINATOR_NOT_AVAILABLE for tp in p.partitions} for t, p in queue.items()}
        transactions = []
        for txn_id, pending in queue.items():
            by_topic: dict[str, list[int]] = {}
            for topic, index in sorted(pending.partitions):
                by_topic.setdefault(topic, []).append(index)
            transactions.append(_Transaction(
                transactional_id=txn_id,
                producer_id=pending.producer_id,
                producer_epoch=pending.producer_epoch,
                verify_only=True,
                topics=[_Topic(name=t, partitions=parts) for t, parts in by_topic.items()],
            ))
        timeout = self.broker.config.int("request.timeout.ms") / 1000
        response: Any = await client.request(
            ADD_PARTITIONS_TO_TXN, VERIFY_VERSION, _Request(transactions=transactions), timeout=timeout
        )
        if response.error_code:
            code = ErrorCode(response.error_code)
            if code is ErrorCode.CLUSTER_AUTHORIZATION_FAILED:
                code = ErrorCode.INVALID_TXN_STATE
            return {t: {tp: code for tp in p.partitions} for t, p in queue.items()}
        answers: dict[str, Errors] = {}
        for result in response.results_by_transaction:
            errors = answers.setdefault(result.transactional_id, {})
            for topic in result.topic_results:
                for p in topic.results_by_partition:
                    code = ErrorCode(p.partition_error_code)
                    if code is ErrorCode.PRODUCER_FENCED:
                        code = ErrorCode.INVALID_PRODUCER_EPOCH
                    errors[(topic.name, p.partition_index)] = code
        return answers
