"""The forwarding rules (moldau/broker/forwarding.py) and the controller a fenced broker
names, on real brokers with in-memory stores: a controller answering over a real
Kafka-protocol connection, and a "controller" that is a closed port or a socket that
never answers (the controller dead or frozen mid-request)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from moldau.broker.broker import Broker, Endpoint
from moldau.broker.forwarding import ControllerChannel, ForwardingError, has_error
from moldau.config.broker import BrokerConfig
from moldau.metastore.memory import MemoryMetaStore
from moldau.metastore.store import BrokerInfo, ControllerInfo, Session
from moldau.protocol.codec import codec_for
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

CREATE_TOPICS = ALL_APIS[19]


class Cluster(MemoryMetaStore):
    """Three registered brokers; the controller is whatever the test sets."""

    def __init__(self, controller: int | None, ports: dict[int, int] | None = None) -> None:
        super().__init__()
        self.controller_id = controller
        self.epoch = 7
        self.ports = ports or {}

    def brokers(self) -> list[BrokerInfo]:
        return [BrokerInfo(i, "127.0.0.1", self.ports.get(i, 1)) for i in range(3)]

    def controller(self) -> ControllerInfo | None:
        return None if self.controller_id is None else ControllerInfo(self.controller_id, self.epoch)


def _request(name: str = "t") -> object:
    codec = codec_for(CREATE_TOPICS)
    Topic = codec.Request.of("topics")
    return codec.Request(topics=[Topic(name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[])],
                         timeout_ms=1000, validate_only=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_fenced_broker_names_no_controller(tmp_path: Path) -> None:
    store = Cluster(controller=1)
    broker = Broker(BrokerConfig({"node.id": 0}), tmp_path, store, Endpoint("127.0.0.1", 9))
    assert broker.controller_id() == 1
    store.session = Session(held=False)  # lapsed: the image of the controller key may be stale
    assert broker.controller_id() == -1
    assert broker.controller_channel.controller() is None


def test_single_broker_and_controller_decide_locally(tmp_path: Path) -> None:
    alone = Broker(BrokerConfig({}), tmp_path / "a", MemoryMetaStore(), Endpoint("127.0.0.1", 9))
    assert alone.controller_channel.is_local()
    leader = Broker(BrokerConfig({"node.id": 1}), tmp_path / "b", Cluster(controller=1), Endpoint("127.0.0.1", 9))
    assert leader.controller_channel.is_local()
    follower = Broker(BrokerConfig({"node.id": 0}), tmp_path / "c", Cluster(controller=1), Endpoint("127.0.0.1", 9))
    assert not follower.controller_channel.is_local()


def test_no_controller_is_answered_request_timed_out_in_time() -> None:
    async def scenario() -> None:
        channel = ControllerChannel(0, Cluster(controller=None), lambda i: ("127.0.0.1", 1))
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await channel.forward(CREATE_TOPICS, 5, _request(), timeout_s=0.3)
        except ForwardingError as exc:
            assert exc.code is ErrorCode.REQUEST_TIMED_OUT
        else:
            raise AssertionError("answered without a controller")
        assert 0.25 <= loop.time() - began < 1.0

    asyncio.run(scenario())


def test_a_controller_that_refuses_connections_is_retried_then_timed_out() -> None:
    async def scenario() -> None:
        port = _free_port()  # nothing listens: the controller died before we sent
        channel = ControllerChannel(0, Cluster(controller=1, ports={1: port}), lambda i: ("127.0.0.1", port))
        try:
            await channel.forward(CREATE_TOPICS, 5, _request(), timeout_s=0.3)
        except ForwardingError as exc:
            assert exc.code is ErrorCode.REQUEST_TIMED_OUT and "unreachable" in exc.message
        else:
            raise AssertionError("answered by nobody")

    asyncio.run(scenario())


def test_a_controller_that_goes_silent_mid_request_is_not_asked_again() -> None:
    async def scenario() -> None:
        received: list[bytes] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await reader.read(65536))  # takes the request, never answers
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        channel = ControllerChannel(0, Cluster(controller=1, ports={1: port}), lambda i: ("127.0.0.1", port))
        try:
            await channel.forward(CREATE_TOPICS, 5, _request(), timeout_s=0.5)
        except ForwardingError as exc:
            assert exc.code is ErrorCode.REQUEST_TIMED_OUT and "unknown" in exc.message
        else:
            raise AssertionError("answered by a silent controller")
        finally:
            server.close()
            await channel.close()
        assert len(received) == 1  # sent once: its outcome is unknown, never repeated

    asyncio.run(scenario())


def test_has_error_finds_nested_codes() -> None:
    codec = codec_for(CREATE_TOPICS)
    Result = codec.Response.of("topics")
    response = codec.Response(topics=[Result(name="a", error_code=0), Result(name="b", error_code=41)])
    assert has_error(response, 41) and not has_error(response, 7)


def test_not_controller_is_sent_again_to_the_new_controller() -> None:
    """The old controller refuses the forwarded request unseen (NOT_CONTROLLER); the
    metadata then names a new controller (a new epoch), which answers."""
    from moldau.protocol.header import response_header

    codec = codec_for(CREATE_TOPICS)
    Result = codec.Response.of("topics")

    async def scenario() -> None:
        seen: dict[str, int] = {"old": 0, "new": 0}
        store = Cluster(controller=1)

        def serve(name: str, code: int):
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                while True:
                    try:
                        size = int.from_bytes(await reader.readexactly(4), "big")
                        frame = await reader.readexactly(size)
                    except asyncio.IncompleteReadError:
                        return
                    seen[name] += 1
                    if name == "old":
                        store.controller_id, store.epoch = 2, 8  # the role moved meanwhile
                    correlation = int.from_bytes(frame[4:8], "big")
                    out = response_header(correlation, True)
                    body = codec.Response(topics=[Result(name="t", error_code=code)])
                    chunks = codec.encode_response_body(5, body, out)
                    data = b"".join(bytes(c) for c in chunks)
                    writer.write((len(data) - 4).to_bytes(4, "big") + data[4:])
                    await writer.drain()
            return handle

        old = await asyncio.start_server(serve("old", 41), "127.0.0.1", 0)
        new = await asyncio.start_server(serve("new", 0), "127.0.0.1", 0)
        store.ports = {1: old.sockets[0].getsockname()[1], 2: new.sockets[0].getsockname()[1]}
        channel = ControllerChannel(0, store, lambda i: ("127.0.0.1", store.ports[i]))
        try:
            response = await channel.forward(CREATE_TOPICS, 5, _request(), timeout_s=3)
        finally:
            old.close()
            new.close()
            await channel.close()
        assert response.topics[0].error_code == 0
        assert seen == {"old": 1, "new": 1}

    asyncio.run(scenario())


def test_the_client_a_request_is_forwarded_for_rides_in_its_client_id() -> None:
    from moldau.broker.forwarding import forwarded_client_id, forwarded_for, is_forwarded

    plain = forwarded_client_id(2, None)
    assert is_forwarded(plain) and forwarded_for(plain) is None
    carried = forwarded_client_id(2, ("User:a|b", "10.0.0.7"))
    assert is_forwarded(carried)
    assert forwarded_for(carried) == ("User:a|b", "10.0.0.7")  # the principal may hold a "|"
