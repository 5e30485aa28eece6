"""The console's way into the broker: the Kafka handlers themselves, called in process.

Why the handlers and not the broker's internals: a handler is where Kafka's rules live
-- ACL checks, forwarding to the controller, the coordinator's state machine, the
produce path's validation and replication wait -- so a console write is exactly a
client's write, and a console read is refused exactly when a client's would be. A call
builds the request object, runs the registered handler with a :class:`ConsoleConnection`
standing in for a socket (it carries the logged-in principal), and returns the decoded
answer object; nothing is encoded or decoded on the way.

In a cluster, a request that only another broker can answer (a partition led there,
a group coordinated there) goes to that broker over the inter-broker listener with a
:class:`~moldau.replication.client.BrokerClient`, under a forwarded client id that names
the console's principal and address: the other broker's handlers judge ACLs as that
principal (the Envelope rule of :func:`moldau.handlers.authorize.allowed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moldau.broker.forwarding import forwarded_client_id
from moldau.handlers.registry import HANDLERS
from moldau.protocol.codec import codec_for
from moldau.protocol.header import RequestHeader
from moldau.protocol.messages import ALL_APIS
from moldau.replication.client import BrokerClient
from moldau.security.principal import KafkaPrincipal
from moldau.server.connection import LaterAnswer

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

#: how long a console call waits for another broker's answer
REMOTE_TIMEOUT_S = 10.0
CLIENT_ID = "moldau-console"


@dataclass
class ConsoleConnection:
    """What handlers read from a connection: who is asking, from where, on which listener."""

    principal: KafkaPrincipal
    ip: str
    listener_name: str | None = None
    authenticator: Any = None
    #: connections to other brokers (the console's one pool)
    pool: RemotePool | None = None

    @property
    def peer(self) -> str:
        return f"console:{self.ip}"

    def close(self) -> None:  # a handler closing the connection: nothing to close
        pass


def request(api_key: int, **fields: Any) -> Any:
    """A request object of ``api_key`` with ``fields`` set (unset ones take defaults)."""
    return codec_for(ALL_APIS[api_key]).Request(**fields)


def part(api_key: int, *path: str, response: bool = False, **fields: Any) -> Any:
    """A nested object of a request (or response) schema, e.g. ``part(0, "topic_data")``."""
    codec = codec_for(ALL_APIS[api_key])
    cls = codec.Response if response else codec.Request
    for name in path:
        cls = cls.of(name)
    return cls(**fields)


async def call_local(broker: Broker, connection: ConsoleConnection, api_key: int, version: int, body: Any) -> Any:
    """Run this broker's handler for ``api_key`` on ``body``; its answer object."""
    handler = HANDLERS[api_key]
    header = RequestHeader(api_key, version, 0, CLIENT_ID, 0, connection)
    result = handler.fn(broker, header, body)
    while True:
        if isinstance(result, LaterAnswer):
            result = result.awaitable
        elif inspect.isawaitable(result):
            result = await result
        else:
            return result


class RemotePool:
    """Idle connections to other brokers, reused by later console calls (a page may
    make several; each would otherwise pay a connection and a SASL exchange). One
    request per connection at a time; the principal rides in each request's client id,
    so any connection serves any session."""

    MAX_IDLE_PER_BROKER = 4

    def __init__(self) -> None:
        self._idle: dict[tuple[int, str, int], list[BrokerClient]] = {}
        self.closed = False

    def take(self, broker: Broker, node_id: int) -> BrokerClient:
        endpoint = broker._endpoint_of(node_id)
        if endpoint is None:
            raise OSError(f"broker {node_id} is not alive")
        idle = self._idle.get((node_id, *endpoint), [])
        while idle:
            client = idle.pop()
            if client.connected:
                return client
            asyncio.ensure_future(client.close())
        channel = broker.controller_channel
        return BrokerClient(endpoint[0], endpoint[1], CLIENT_ID, ssl=channel.client_ssl, sasl=channel.client_sasl)

    def give_back(self, node_id: int, client: BrokerClient) -> None:
        idle = self._idle.setdefault((node_id, client.host, client.port), [])
        if self.closed or not client.connected or len(idle) >= self.MAX_IDLE_PER_BROKER:
            asyncio.ensure_future(client.close())
        else:
            idle.append(client)

    async def close(self) -> None:
        self.closed = True
        idle, self._idle = self._idle, {}
        for clients in idle.values():
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()


async def call_remote(broker: Broker, connection: ConsoleConnection, node_id: int, api_key: int, version: int,
                      body: Any, pool: RemotePool | None = None) -> Any:
    """Send ``body`` to broker ``node_id`` on the inter-broker listener, as the console's principal."""
    pool = pool if pool is not None else RemotePool()
    client = pool.take(broker, node_id)
    client_id = forwarded_client_id(broker.node_id, (str(connection.principal), connection.ip))
    try:
        if not client.connected:
            await client.connect(REMOTE_TIMEOUT_S)
        answer = await client.request(ALL_APIS[api_key], version, body, REMOTE_TIMEOUT_S, client_id=client_id)
    except BaseException:
        with contextlib.suppress(Exception):
            await client.close()
        raise
    pool.give_back(node_id, client)
    return answer


async def call(broker: Broker, connection: ConsoleConnection, api_key: int, version: int, body: Any,
               node_id: int | None = None) -> Any:
    """:func:`call_local`, or :func:`call_remote` when ``node_id`` is another broker
    (over the connection's pool)."""
    if node_id is None or node_id == broker.node_id:
        return await call_local(broker, connection, api_key, version, body)
    return await call_remote(broker, connection, node_id, api_key, version, body, connection.pool)
