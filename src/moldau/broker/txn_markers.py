"""How the transaction coordinator's markers reach partition leaders.

Theory of operation: :class:`TxnMarkers` is the broker's
:class:`moldau.ports.TxnMarkerSender`. A marker for partitions this broker leads is
written in-process (:meth:`TxnMarkers.write_txn_markers`); one for partitions another broker leads goes to
it as WriteTxnMarkers v1 (what Kafka's coordinator sends), over one connection per
broker with one request in flight, the markers that queued meanwhile batched into the
next request. Any failure to reach a broker answers its
partitions NOT_LEADER_OR_FOLLOWER, which the coordinator retries after looking the
leader up again.

In-process, the marker is written by the same function the WriteTxnMarkers handler
uses (:func:`moldau.replication.txn_markers.write_txn_markers`): appended, waited on
until the ISR has it, and for ``__consumer_offsets`` the broker's marker listeners (the
group coordinator) told.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from moldau.broker.peers import PeerClients
from moldau.ports import TopicPartition, TxnMarker
from moldau.protocol.codec import codec_for
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS
from moldau.replication.txn_markers import write_txn_markers as write_markers

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

log = logging.getLogger(__name__)

WRITE_TXN_MARKERS = ALL_APIS[27]
WRITE_TXN_MARKERS_VERSION = 1
_Request = codec_for(WRITE_TXN_MARKERS).Request
_Marker = _Request.of("markers")
_MarkerTopic = _Marker.of("topics")


class TxnMarkers:
    """The broker's marker path. Markers for another broker queue up while a request to
    it is in flight and go together in the next one (Kafka's
    TransactionMarkerChannelManager batches them the same way), so many transactions
    ending at once cost one round trip per broker, not one each."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._peers = PeerClients(broker, "txn-coordinator", log)
        self._queues: dict[int, list[tuple[TxnMarker, asyncio.Future[dict[TopicPartition, ErrorCode]]]]] = {}

    async def close(self) -> None:
        await self._peers.stop_senders()
        for queue in self._queues.values():
            for _, waiter in queue:
                if not waiter.done():
                    waiter.cancel()
        await self._peers.close()

    # TxnMarkerSender ------------------------------------------------------------------

    async def send_txn_markers(self, broker_id: int, marker: TxnMarker) -> dict[TopicPartition, ErrorCode]:
        if broker_id == self.broker.node_id:
            return await self.write_txn_markers(marker)
        waiter: asyncio.Future[dict[TopicPartition, ErrorCode]] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(broker_id, []).append((marker, waiter))
        self._peers.kick(broker_id, self._drain)
        return await waiter

    async def _drain(self, broker_id: int) -> None:
        """Send what is queued for ``broker_id``, one request at a time, until nothing is."""
        while True:
            queue = self._queues.pop(broker_id, [])
            queue = [(m, w) for m, w in queue if not w.done()]
            if not queue:
                return
            markers = [m for m, _ in queue]
            try:
                results = await self._send(broker_id, markers)
            except Exception as exc:  # the coordinator retries; no waiter may be left hanging
                await self._peers.failed(broker_id, "WriteTxnMarkers", exc)
                results = [{tp: ErrorCode.NOT_LEADER_OR_FOLLOWER for tp in m.partitions} for m in markers]
            for (_, waiter), result in zip(queue, results, strict=True):
                if not waiter.done():
                    waiter.set_result(result)

    async def _send(self, broker_id: int, markers: list[TxnMarker]) -> list[dict[TopicPartition, ErrorCode]]:
        """One WriteTxnMarkers request with ``markers``; each one's errors by partition
        (Kafka answers the markers in the order they were asked)."""
        out = [{tp: ErrorCode.NOT_LEADER_OR_FOLLOWER for tp in m.partitions} for m in markers]
        client = await self._peers.get(broker_id)
        if client is None:
            return out
        entries = []
        for marker in markers:
            by_topic: dict[str, list[int]] = {}
            for topic, index in marker.partitions:
                by_topic.setdefault(topic, []).append(index)
            entries.append(_Marker(
                producer_id=marker.producer_id,
                producer_epoch=marker.producer_epoch,
                transaction_result=marker.committed,
                topics=[_MarkerTopic(name=t, partition_indexes=parts) for t, parts in by_topic.items()],
                coordinator_epoch=marker.coordinator_epoch,
            ))
        timeout = self.broker.config.int("request.timeout.ms") / 1000
        response: Any = await client.request(
            WRITE_TXN_MARKERS, WRITE_TXN_MARKERS_VERSION, _Request(markers=entries), timeout=timeout
        )
        for index, result in enumerate(response.markers[: len(markers)]):
            errors = out[index]
            if markers[index].producer_id != result.producer_id:
                continue  # not in request order after all: leave it to the retry
            for topic in result.topics:
                for p in topic.partitions:
                    if (topic.name, p.partition_index) in errors:
                        errors[(topic.name, p.partition_index)] = ErrorCode(p.error_code)
        return out

    # this broker's partitions --------------------------------------------------------

    async def write_txn_markers(self, marker: TxnMarker) -> dict[TopicPartition, ErrorCode]:
        """What WriteTxnMarkers does on a leader (the log side's
        :func:`moldau.replication.txn_markers.write_txn_markers`), called in-process."""
        return await write_markers(
            self.broker, marker.producer_id, marker.producer_epoch, marker.committed,
            marker.coordinator_epoch, list(marker.partitions),
            timeout_s=self.broker.config.int("request.timeout.ms") / 1000,
        )
