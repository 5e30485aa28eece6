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


async def call_remote(broker: Broker, connection: ConsoleConnection, node_id: int, api_key: int, version: int,
                      body: Any) -> Any:
    """Send ``body`` to broker ``node_id`` on the inter-broker listener, as the console's principal."""
    endpoint = broker._endpoint_of(node_id)
    if endpoint is None:
        raise OSError(f"broker {node_id} is not alive")
    channel = broker.controller_channel
    client_id = forwarded_client_id(broker.node_id, (str(connection.principal), connection.ip))
    client = BrokerClient(endpoint[0], endpoint[1], client_id, ssl=channel.client_ssl, sasl=channel.client_sasl)
    try:
        await client.connect(REMOTE_TIMEOUT_S)
        return await client.request(ALL_APIS[api_key], version, body, REMOTE_TIMEOUT_S)
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def call(broker: Broker, connection: ConsoleConnection, api_key: int, version: int, body: Any,
               node_id: int | None = None) -> Any:
    """:func:`call_local`, or :func:`call_remote` when ``node_id`` is another broker."""
    if node_id is None or node_id == broker.node_id:
        return await call_local(broker, connection, api_key, version, body)
    return await call_remote(broker, connection, node_id, api_key, version, body)
