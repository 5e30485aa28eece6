"""The share-partition leader's persister for share-partitions whose state another
broker coordinates: KIP-932's Read/Write/DeleteShareGroupState over the inter-broker
listener.

Theory of operation: a share-partition's state lives in one partition of
``__share_group_state`` (:mod:`.state`); its leader is the share coordinator of that
share-partition (what FindCoordinator key type 2, ``group:topicId:partition``,
names). When this broker leads the data partition but not the state partition, the
state goes to that coordinator as Kafka's persister sends it: ReadShareGroupState when
the share-partition is first needed here (a new leader reads what the old one wrote
before it serves a ShareFetch), WriteShareGroupState after every request that changed
it (before the request is answered, as for the local case), DeleteShareGroupState for
DeleteGroups and DeleteShareGroupOffsets. The coordinator is found in the metadata
image, as :mod:`moldau.broker.txn_verification` finds a transaction coordinator, and
the requests go over the same kind of connection (the inter-broker listener's TLS and
SASL settings); the coordinator authorizes them as CLUSTER_ACTION.

NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS and network
errors are retried (and when the state partition's leadership comes to this broker,
the caller is told, :class:`LocalNow`, once it is loaded) (leadership of the state partition is moving, or it is loading)
until ``request.timeout.ms``; then, and for FENCED_STATE_EPOCH or FENCED_LEADER_EPOCH,
the caller gets the error as a :class:`KafkaError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from moldau.protocol.codec import codec_for
from moldau.protocol.errors import ErrorCode, KafkaError, ProtocolDecodeError
from moldau.protocol.messages import ALL_APIS
from moldau.replication.client import BrokerClient

log = logging.getLogger("moldau.coordinator.share")

READ = ALL_APIS[84]
WRITE = ALL_APIS[85]
DELETE = ALL_APIS[86]
SUMMARY = ALL_APIS[87]
_read = codec_for(READ).Request
_RTopic = _read.of("topics")
_RPartition = _RTopic.of("partitions")
_write = codec_for(WRITE).Request
_WTopic = _write.of("topics")
_WPartition = _WTopic.of("partitions")
_WBatch = _WPartition.of("state_batches")
_summary = codec_for(SUMMARY).Request
_STopic = _summary.of("topics")
_SPartition = _STopic.of("partitions")
_delete = codec_for(DELETE).Request
_DTopic = _delete.of("topics")
_DPartition = _DTopic.of("partitions")

RETRIABLE = frozenset({
    ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.NETWORK_EXCEPTION, ErrorCode.REQUEST_TIMED_OUT,
})
_NETWORK_ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ProtocolDecodeError, EOFError)

#: (start offset, state epoch, batches); start -1: never initialized
Stored = tuple[int, int, list[tuple[int, int, int, int]]]


class LocalNow(Exception):
    """The state partition's leadership came to this broker and it is loaded: the caller
    serves the request from its own view."""


class RemoteShareState:
    """Requests to the share coordinators on other brokers (see the module docstring)."""

    def __init__(self, broker: Any, coordinator_of: Any, ready_here: Any) -> None:
        self.broker = broker
        #: state partition index -> the live broker leading it, or None
        self._coordinator_of = coordinator_of
        #: state partition index -> whether this broker leads it and has loaded it
        self._ready_here = ready_here
        self._clients: dict[int, BrokerClient] = {}

    async def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()

    async def _client(self, broker_id: int) -> BrokerClient | None:
        client = self._clients.get(broker_id)
        if client is not None and client.connected:
            return client
        endpoint = next(((b.host, b.port) for b in self.broker.live_brokers() if b.broker_id == broker_id), None)
        if endpoint is None:
            return None
        replicas = self.broker.replica_manager  # its inter-broker TLS and SASL settings
        client = BrokerClient(*endpoint, client_id=f"share-persister-{self.broker.node_id}",
                              ssl=replicas.client_ssl, sasl=replicas.client_sasl)
        await client.connect()
        self._clients[broker_id] = client
        return client

    async def _call(self, index: int, api: Any, request: Any, timeout: float | None = None) -> tuple[ErrorCode, Any]:
        """Send ``request`` to the coordinator of state partition ``index``, retrying
        the retriable errors for ``timeout`` seconds (``request.timeout.ms`` by
        default); (first partition's error, its result)."""
        if timeout is None:
            timeout = self.broker.config.int("request.timeout.ms") / 1000
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        backoff = 0.05
        code = ErrorCode.COORDINATOR_NOT_AVAILABLE
        while True:
            coordinator = self._coordinator_of(index)
            result = None
            if coordinator is not None and coordinator != self.broker.node_id:
                try:
                    client = await self._client(coordinator)
                    if client is not None:
                        version = 1 if api is SUMMARY else 0
                        response = await client.request(api, version, request, timeout=max(deadline - loop.time(), 0.5))
                        result = response.results[0].partitions[0]
                        code = ErrorCode(result.error_code)
                except _NETWORK_ERRORS as exc:
                    log.info("%s to broker %s failed: %r", api.name, coordinator, exc)
                    code = ErrorCode.NETWORK_EXCEPTION
                    stale = self._clients.pop(coordinator, None)
                    if stale is not None:
                        with contextlib.suppress(Exception):
                            await stale.close()
            elif coordinator == self.broker.node_id:
                if self._ready_here(index):
                    raise LocalNow()
                code = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS  # ours, still loading
            if code not in RETRIABLE or loop.time() + backoff > deadline:
                return code, result
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.5)

    async def read(self, index: int, group_id: str, topic_id: uuid.UUID, partition: int, leader_epoch: int,
                   timeout: float | None = None) -> Stored:
        request = _read(group_id=group_id, topics=[_RTopic(topic_id=topic_id, partitions=[
            _RPartition(partition=partition, leader_epoch=leader_epoch)])])
        code, result = await self._call(index, READ, request, timeout)
        if code is not ErrorCode.NONE:
            raise KafkaError(code, f"ReadShareGroupState: {code.name}")
        batches = [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count) for b in result.state_batches]
        return int(result.start_offset), int(result.state_epoch), batches

    async def write(self, index: int, group_id: str, topic_id: uuid.UUID, partition: int, state_epoch: int,
                    leader_epoch: int, start: int, batches: list[tuple[int, int, int, int]]) -> ErrorCode:
        request = _write(group_id=group_id, topics=[_WTopic(topic_id=topic_id, partitions=[_WPartition(
            partition=partition, state_epoch=state_epoch, leader_epoch=leader_epoch, start_offset=start,
            state_batches=[_WBatch(first_offset=f, last_offset=la, delivery_state=s, delivery_count=c)
                           for f, la, s, c in batches])])])
        code, _ = await self._call(index, WRITE, request)
        return code

    async def delete(self, index: int, group_id: str, topic_id: uuid.UUID, partition: int) -> ErrorCode:
        request = _delete(group_id=group_id, topics=[_DTopic(topic_id=topic_id, partitions=[
            _DPartition(partition=partition)])])
        code, _ = await self._call(index, DELETE, request)
        return code

    async def summary(self, index: int, group_id: str, topic_id: uuid.UUID, partition: int,
                      timeout: float | None = None) -> tuple[int, int]:
        """ReadShareGroupStateSummary v1: (start offset, delivery complete count)."""
        request = _summary(group_id=group_id, topics=[_STopic(topic_id=topic_id, partitions=[
            _SPartition(partition=partition, leader_epoch=-1)])])
        code, result = await self._call(index, SUMMARY, request, timeout)
        if code is not ErrorCode.NONE:
            raise KafkaError(code, f"ReadShareGroupStateSummary: {code.name}")
        return int(result.start_offset), int(result.delivery_complete_count)
