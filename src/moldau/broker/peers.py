"""Connections from this broker to other brokers for coordinator traffic.

Theory of operation: the transaction paths that talk to another broker (WriteTxnMarkers
from :mod:`moldau.broker.txn_markers`, AddPartitionsToTxn verification from
:mod:`moldau.broker.txn_verification`) each keep one connection per broker over the
inter-broker listener, with its TLS and SASL settings, connected on first use and
dropped after any failure so the next request reconnects, and one sender task per
broker that drains what queued for it, one request in flight at a time.
:class:`PeerClients` is that pool, so both paths connect, send, fail and close the same
way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from moldau.protocol.errors import ProtocolDecodeError
from moldau.replication.client import BrokerClient

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

#: what a lost, broken or silent peer raises (logged briefly; anything else with a trace)
NETWORK_ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ProtocolDecodeError, EOFError)


class PeerClients:
    """One :class:`BrokerClient` (named ``{role}-{node id}``) and one sender task per other broker."""

    def __init__(self, broker: Broker, role: str, log: logging.Logger) -> None:
        self.broker = broker
        self.role = role
        self.log = log
        self._clients: dict[int, BrokerClient] = {}
        self._senders: dict[int, asyncio.Task[None]] = {}

    def kick(self, broker_id: int, drain: Callable[[int], Coroutine[Any, Any, None]]) -> None:
        """Make sure ``drain(broker_id)`` runs: a new sender task unless one is running
        (it picks up what was queued meanwhile before it ends)."""
        sender = self._senders.get(broker_id)
        if sender is None or sender.done():
            self._senders[broker_id] = asyncio.ensure_future(drain(broker_id))

    async def stop_senders(self) -> None:
        """Cancel every sender task and wait for it to end."""
        for task in self._senders.values():
            task.cancel()
        for task in self._senders.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def get(self, broker_id: int) -> BrokerClient | None:
        """The connection to ``broker_id``, connecting first if needed; None when the
        metadata image knows no live broker by that id."""
        client = self._clients.get(broker_id)
        if client is None:
            endpoint = next(((b.host, b.port) for b in self.broker.live_brokers() if b.broker_id == broker_id), None)
            if endpoint is None:
                return None
            replicas = self.broker.replica_manager  # its inter-broker TLS and SASL settings
            client = BrokerClient(*endpoint, client_id=f"{self.role}-{self.broker.node_id}",
                                  ssl=replicas.client_ssl, sasl=replicas.client_sasl)
            await client.connect()
            self._clients[broker_id] = client
        return client

    async def failed(self, broker_id: int, what: str, exc: BaseException) -> None:
        """Log a request ``what`` to ``broker_id`` that raised ``exc`` and drop its
        connection, so the next request starts on a fresh one."""
        if isinstance(exc, NETWORK_ERRORS):
            self.log.info("%s to broker %d failed: %r", what, broker_id, exc)
        else:
            self.log.error("%s to broker %d failed", what, broker_id, exc_info=exc)
        client = self._clients.pop(broker_id, None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()
