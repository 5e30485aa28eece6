"""Forwarding metadata writes to the controller, as KRaft brokers do.

Theory of operation: in a cluster, requests that change topics or cluster metadata
(CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs, IncrementalAlterConfigs,
AlterPartitionReassignments, ElectLeaders) are decided by the elected controller only,
so that placement and validation happen in one place. A broker that receives one and
is not the controller re-sends the same request, unchanged, over a Kafka-protocol
connection to the controller broker and hands the controller's answer back to its
client (:class:`ControllerChannel`). The forwarded request carries the client id
:data:`FORWARDED_CLIENT_ID` (plus the forwarding broker's id): the controller handles
it locally, and a broker that receives it without being the controller (the role
moved while it was on its way) answers NOT_CONTROLLER for every item, without doing
anything, so the forwarder may safely send it again to the new controller. A request
is never forwarded twice.

Outcomes the forwarder hands back as a retriable error instead of an answer:

* no controller known (an election in progress, or this broker fenced) until the
  deadline: REQUEST_TIMED_OUT;
* the connection to the controller fails before the request was written (the
  controller just died and refuses connections): the request was not seen, so it is
  tried again as soon as the metadata names a controller (bounded by the deadline);
* the connection breaks, or no answer comes, after the request was written (the
  controller died or froze mid-request): the outcome is unknown, so it is not sent
  again (a CreateTopics repeated on a new controller would answer
  TOPIC_ALREADY_EXISTS for the first attempt's topic): REQUEST_TIMED_OUT, which
  clients retry, and whose retry finds the state the controller left.

Connections are pooled per controller epoch: idle ones are reused by the next
forwarded request; a new epoch closes every connection to the former controller.
Concurrent requests each take a connection of their own (a :class:`BrokerClient`
has one request in flight at a time), so they are forwarded in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from moldau.metastore.store import MetaStore, TopicRecord
from moldau.protocol.codec import codec_for
from moldau.protocol.errors import ErrorCode, KafkaError
from moldau.protocol.messages import ALL_APIS
from moldau.protocol.schema import Api
from moldau.replication.client import BrokerClient

log = logging.getLogger(__name__)

#: client id prefix of a request one broker forwards to the controller
FORWARDED_CLIENT_ID = "moldau-forwarded"
#: how often a forwarder looks again for a controller while there is none
POLL_S = 0.05


class ForwardingError(Exception):
    """The request could not be answered by the controller; ``code`` is retriable."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_forwarded(client_id: str | None) -> bool:
    """True for a request another broker forwarded (handle it here or refuse it)."""
    return client_id is not None and client_id.startswith(FORWARDED_CLIENT_ID)


def forwarded_client_id(node_id: int, on_behalf: tuple[str, str] | None) -> str:
    """``moldau-forwarded-<broker>``, then ``|<address>|<principal>`` of the client the
    request is forwarded for (the principal last: only it may hold a ``|``)."""
    base = f"{FORWARDED_CLIENT_ID}-{node_id}"
    if on_behalf is None:
        return base
    principal, address = on_behalf
    return f"{base}|{address}|{principal}"


def forwarded_for(client_id: str) -> tuple[str, str] | None:
    """(principal, address) a forwarded request was sent for, or None."""
    parts = client_id.split("|", 2)
    if len(parts) != 3:
        return None
    return parts[2], parts[1]


def has_error(obj: Any, code: int) -> bool:
    """True when ``code`` is an ``error_code`` anywhere in a decoded response."""
    fields = getattr(obj, "_fields", None)
    if fields is None:
        return False
    for f in fields:
        value = getattr(obj, f.name, None)
        if f.name == "error_code" and value == code:
            return True
        if isinstance(value, list):
            if any(has_error(item, code) for item in value):
                return True
        elif hasattr(value, "_fields") and has_error(value, code):
            return True
    return False


class ControllerChannel:
    """A broker's connections to the controller broker, and the forwarding rules."""

    def __init__(self, node_id: int, store: MetaStore, endpoint_of: Callable[[int], tuple[str, int] | None]) -> None:
        self.node_id = node_id
        self.store = store
        self._endpoint_of = endpoint_of
        self._epoch = 0
        self._idle: list[BrokerClient] = []
        self._closed = False

    def controller(self) -> tuple[int, int] | None:
        """(controller id, epoch) as this broker may act on it now, or None."""
        if not self.store.session.valid():
            return None  # fenced: our image of the controller may be stale
        controller = self.store.controller()
        if controller is None:
            # a single broker (never registers): it is its own controller
            return None if self.store.brokers() else (self.node_id, 0)
        return controller.broker_id, controller.epoch

    def is_local(self) -> bool:
        """True when this broker is the controller (a single broker always is)."""
        current = self.controller()
        return current is not None and current[0] == self.node_id

    async def forward(
        self, api: Api, version: int, request: Any, timeout_s: float, on_behalf: tuple[str, str] | None = None
    ) -> Any:
        """The controller's answer to ``request``; raises :class:`ForwardingError`.

        ``on_behalf`` is the client's (principal, address): the controller authorizes
        the request as that client, as Kafka's Envelope carries the principal.
        Returns None when this broker has become the controller meanwhile: the caller
        then handles the request itself."""
        client_id = forwarded_client_id(self.node_id, on_behalf)
        deadline = time.monotonic() + timeout_s
        last_problem = "no controller is known"
        while True:
            current = self.controller()
            endpoint = None if current is None else self._endpoint_of(current[0])
            if current is not None and current[0] == self.node_id:
                return None
            if current is None or endpoint is None:
                if time.monotonic() + POLL_S >= deadline:
                    raise ForwardingError(ErrorCode.REQUEST_TIMED_OUT, f"{api.name}: {last_problem}")
                await asyncio.sleep(POLL_S)
                continue
            controller_id, epoch = current
            client = self._take(epoch, controller_id, endpoint)
            remaining = deadline - time.monotonic()
            try:
                if not client.connected:
                    await client.connect(timeout=max(0.05, min(remaining, 5.0)))
            except (TimeoutError, OSError) as exc:
                # not sent: safe to try again once a (new) controller is there
                await client.close()
                last_problem = f"controller {controller_id} at {endpoint[0]}:{endpoint[1]} unreachable ({exc!r})"
                if time.monotonic() + POLL_S >= deadline:
                    raise ForwardingError(ErrorCode.REQUEST_TIMED_OUT, f"{api.name}: {last_problem}") from None
                await asyncio.sleep(POLL_S)
                continue
            try:
                response = await client.request(
                    api, version, request, timeout=max(0.05, deadline - time.monotonic()), client_id=client_id
                )
            except asyncio.CancelledError:
                await client.close()  # an answer may still come on it: never reuse
                raise
            except Exception as exc:
                await client.close()
                log.warning("%s forwarded to controller %d: no answer (%r); answering REQUEST_TIMED_OUT",
                            api.name, controller_id, exc)
                raise ForwardingError(
                    ErrorCode.REQUEST_TIMED_OUT,
                    f"{api.name}: the controller (broker {controller_id}) did not answer; its outcome is unknown",
                ) from None
            self._give_back(epoch, client)
            if has_error(response, int(ErrorCode.NOT_CONTROLLER)):
                # refused unseen: the role moved; send it again to the new controller
                last_problem = f"broker {controller_id} is no longer the controller"
                if time.monotonic() + POLL_S >= deadline:
                    return response  # NOT_CONTROLLER itself is retriable
                await self._wait_for_other_controller(epoch, deadline)
                continue
            return response

    async def create_topic(self, topic: TopicRecord, timeout_s: float) -> bool:
        """Have the controller create ``topic`` (an auto-created topic, or an internal
        one a coordinator needs), as Kafka's AutoTopicCreationManager sends CreateTopics
        to the controller: only the name, partition count, replication factor and
        configs go; the controller places the replicas. False when this broker is the
        controller (then it creates the topic itself); True when the controller created
        it or it existed; raises KafkaError with the controller's refusal."""
        api = ALL_APIS[19]
        codec = codec_for(api)
        Topic = codec.Request.of("topics")
        Config = Topic.of("configs")
        first = next(iter(topic.partitions.values()))
        request = codec.Request(
            topics=[Topic(
                name=topic.name, num_partitions=len(topic.partitions), replication_factor=len(first.replicas),
                assignments=[], configs=[Config(name=k, value=v) for k, v in sorted(topic.configs.items())],
            )],
            timeout_ms=int(timeout_s * 1000), validate_only=False,
        )
        try:
            response = await self.forward(api, 7, request, timeout_s)
        except ForwardingError as exc:
            # what Kafka answers for a topic whose creation is not through yet
            raise KafkaError(ErrorCode.LEADER_NOT_AVAILABLE, exc.message) from None
        if response is None:
            return False
        result = response.topics[0]
        if result.error_code not in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
            raise KafkaError(ErrorCode(result.error_code), result.error_message)
        return True

    async def _wait_for_other_controller(self, epoch: int, deadline: float) -> None:
        while time.monotonic() + POLL_S < deadline:
            current = self.controller()
            if current is not None and current[1] != epoch:
                return
            await asyncio.sleep(POLL_S)

    def _take(self, epoch: int, controller_id: int, endpoint: tuple[str, int]) -> BrokerClient:
        if epoch != self._epoch:
            self._epoch = epoch
            stale, self._idle = self._idle, []
            for client in stale:
                asyncio.ensure_future(client.close())
        while self._idle:
            client = self._idle.pop()
            if (client.host, client.port) == endpoint and client.connected:
                return client
            asyncio.ensure_future(client.close())
        return BrokerClient(endpoint[0], endpoint[1], f"{FORWARDED_CLIENT_ID}-{self.node_id}")

    def _give_back(self, epoch: int, client: BrokerClient) -> None:
        if self._closed or epoch != self._epoch or len(self._idle) >= 8:
            asyncio.ensure_future(client.close())
        else:
            self._idle.append(client)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                await client.close()
