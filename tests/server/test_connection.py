"""Connection framing and memory accounting, driven through a fake transport.

The transport is only I/O: these tests call ``get_buffer``/``buffer_updated`` as the
event loop does around ``recv_into``, and check what reaches the dispatcher, what the
connection holds, and when it stops reading.
"""

from __future__ import annotations

import asyncio
import random
import struct

from moldau.server.connection import LARGE_FRAME, Connection, StagingBuffer
from moldau.server.limits import ConnectionRegistry, ConnectionSettings
from moldau.server.memory_pool import MemoryPool

MiB = 1024 * 1024


class FakeTransport:
    def __init__(self, ip: str = "10.0.0.1") -> None:
        self.ip = ip
        self.paused = False
        self.closed = False
        self.written: list[bytes] = []

    def get_extra_info(self, key: str) -> tuple[str, int]:
        return (self.ip, 40000)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def writelines(self, chunks: list[bytes]) -> None:
        self.written += chunks

    def close(self) -> None:
        self.closed = True


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def make(pool: MemoryPool | None = None, staging: StagingBuffer | None = None, **kw):
    got: list[bytes] = []

    def dispatch(data: bytearray, conn: Connection) -> list[bytes]:
        got.append(bytes(data))
        return [b"answer"]

    conn = Connection(dispatch, 200 * MiB, pool=pool, staging=staging, **kw)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, got


def feed(conn: Connection, data: bytes, chunk: int | None = None, rng: random.Random | None = None) -> int:
    """Deliver ``data`` as reads of at most ``chunk`` bytes; stops when reading pauses."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        if conn.transport.paused or conn.transport.closed:  # type: ignore[union-attr]
            break
        buf = conn.get_buffer(-1)
        n = min(len(buf), len(view) - pos, chunk or len(view), rng.randint(1, 300_000) if rng else len(view))
        buf[:n] = view[pos : pos + n]
        del buf
        conn.buffer_updated(n)
        pos += n
    return pos


def test_frames_cut_at_any_point_arrive_whole_and_in_order() -> None:
    rng = random.Random(7)
    bodies = [rng.randbytes(rng.choice([0, 1, 17, 300, LARGE_FRAME, LARGE_FRAME + 1, 700_000, 2 * MiB])) for _ in range(60)]
    pool = MemoryPool(64 * MiB)
    conn, transport, got = make(pool)
    assert feed(conn, b"".join(frame(b) for b in bodies), rng=rng) == sum(len(b) + 4 for b in bodies)
    assert got == bodies
    assert transport.written == [b"answer"] * len(bodies)
    assert pool.reserved == 0  # every frame's bytes went back once it was handled


def test_an_announced_frame_is_not_allocated_before_its_bytes_arrive() -> None:
    pool = MemoryPool(200 * MiB)
    conn, _, got = make(pool)
    feed(conn, struct.pack(">i", 100 * MiB) + b"x" * 2048)
    assert got == []
    assert pool.reserved <= LARGE_FRAME  # not 100 MiB
    assert conn._frame is not None and len(conn._frame) <= LARGE_FRAME
    conn.connection_lost(None)
    assert pool.reserved == 0


def test_idle_connections_hold_no_receive_buffer() -> None:
    staging = StagingBuffer()
    conns = [make(staging=staging) for _ in range(3)]
    for i, (conn, _, got) in enumerate(conns):
        feed(conn, frame(b"hello %d" % i) + frame(b"part")[:5])  # one frame and the start of another
        assert got == [b"hello %d" % i]
    for conn, _, got in conns:
        assert conn._carry == frame(b"part")[:5]  # only the partial tail is its own
        feed(conn, frame(b"part")[5:])
        assert got[-1] == b"part"
        assert conn._carry == b"" and conn._frame is None


def test_reading_stops_while_the_pool_is_out_of_memory_and_resumes_on_release() -> None:
    pool = MemoryPool(1 * MiB)
    pool.reserve(MiB)  # requests of other connections hold the budget
    hog, _, _ = make(pool)
    feed(hog, struct.pack(">i", 100 * MiB) + bytes(MiB))  # grows past it in the lane
    assert pool.lane == id(hog)
    conn, transport, got = make(pool)
    body = bytes(3 * MiB)
    fed = feed(conn, frame(body))
    assert transport.paused and fed < len(body)  # muted, as Kafka mutes the channel
    hog.connection_lost(None)  # the lane and the hog's bytes free up
    assert not transport.paused
    feed(conn, frame(body)[fed:])
    assert got == [body]
    assert pool.reserved == MiB


def test_a_frame_larger_than_the_whole_budget_is_still_served() -> None:
    pool = MemoryPool(1 * MiB)
    conn, _, got = make(pool)
    body = bytes(5 * MiB)
    assert feed(conn, frame(body) + frame(b"next")) == len(body) + 12
    assert got == [body, b"next"]
    assert pool.reserved == 0 and pool.peak_reserved >= 5 * MiB


def test_frames_over_socket_request_max_bytes_close_the_connection() -> None:
    conn, transport, got = make()
    feed(conn, frame(b"ok") + struct.pack(">i", 300 * MiB) + b"x" * 10)
    assert transport.closed and got == []  # nothing more is handled once it is closed


def test_connections_over_the_per_ip_limit_are_refused() -> None:
    registry = ConnectionRegistry(lambda: ConnectionSettings(max_connections=3, max_per_ip=2))
    first, t1, _ = make(registry=registry)
    second, t2, _ = make(registry=registry)
    third, t3, _ = make(registry=registry)
    assert (t1.closed, t2.closed, t3.closed) == (False, False, True)
    third.connection_lost(None)
    first.connection_lost(None)
    again, t4, got = make(registry=registry)
    assert not t4.closed
    feed(again, frame(b"still served"))
    assert got == [b"still served"]


def test_small_requests_are_served_while_a_stalled_frame_holds_the_budget() -> None:
    pool = MemoryPool(1 * MiB)
    hog, _, _ = make(pool)
    feed(hog, struct.pack(">i", 100 * MiB) + bytes(MiB))  # never finished
    assert pool.out_of_memory
    conn, transport, got = make(pool)
    for i in range(100):  # request, answer, request...: it holds nothing between them
        feed(conn, frame(b"small %d" % i))
        assert not transport.paused
    assert got == [b"small %d" % i for i in range(100)]
    assert len(transport.written) == 100


def test_a_frame_waiting_for_the_lane_takes_it_when_it_frees() -> None:
    pool = MemoryPool(1 * MiB)
    pool.reserve(MiB)  # requests of other connections hold the budget
    first, _, got1 = make(pool)
    second, t2, got2 = make(pool)
    body = bytes(3 * MiB)
    fed1 = feed(first, frame(body)[: 2 * MiB])  # takes the lane past the budget
    fed2 = feed(second, frame(body))
    assert t2.paused and fed2 < len(body)
    feed(first, frame(body)[fed1:])  # completes and is handled: the lane frees
    assert got1 == [body] and not t2.paused
    feed(second, frame(body)[fed2:])
    assert got2 == [body] and pool.reserved == MiB


def test_a_read_while_waiting_for_memory_still_gets_a_buffer() -> None:
    pool = MemoryPool(1 * MiB)
    pool.reserve(MiB)
    hog, _, _ = make(pool)
    feed(hog, struct.pack(">i", 100 * MiB) + bytes(MiB))  # the lane
    conn, transport, _ = make(pool)
    feed(conn, frame(bytes(3 * MiB)))
    assert transport.paused
    assert len(conn.get_buffer(-1)) > 0  # never empty: asyncio refuses an empty buffer


def _pipelined_connection(pool: MemoryPool):
    """A connection whose dispatcher answers by the frame's first byte: ``L`` a
    LaterAnswer resolved by the test, ``R`` at once, ``W`` an awaitable that still works."""
    from moldau.server.connection import LaterAnswer

    loop = asyncio.get_running_loop()
    log: list[str] = []
    gates: dict[str, asyncio.Future[None]] = {}

    async def later(name: str) -> list[bytes]:
        await gates[name]
        return [name.encode()]

    async def working(name: str) -> list[bytes]:
        log.append(f"start {name}")
        await asyncio.sleep(0)
        return [name.encode()]

    def dispatch(data: bytearray, conn: Connection):
        name = bytes(data).decode()
        log.append(f"dispatch {name}")
        if name[0] == "L":
            gates[name] = loop.create_future()
            return LaterAnswer(later(name))
        if name[0] == "W":
            return working(name)
        return [name.encode()]

    conn = Connection(dispatch, 200 * MiB, pool=pool)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, log, gates


async def _settle_loop() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_requests_behind_a_later_answer_are_handled_at_once_and_answered_in_order() -> None:
    asyncio.run(_requests_behind_a_later_answer_are_handled_at_once_and_answered_in_order())


async def _requests_behind_a_later_answer_are_handled_at_once_and_answered_in_order() -> None:
    pool = MemoryPool(64 * MiB)
    conn, transport, log, gates = _pipelined_connection(pool)
    feed(conn, b"".join(frame(n) for n in (b"L1", b"R2", b"L3", b"R4")))
    await _settle_loop()
    # all four handled (appended) while the first still waits for its replication
    assert log == ["dispatch L1", "dispatch R2", "dispatch L3", "dispatch R4"]
    assert transport.written == []
    gates["L3"].set_result(None)  # the later one is ready first: it still waits its turn
    await _settle_loop()
    assert transport.written == []
    gates["L1"].set_result(None)
    await _settle_loop()
    assert transport.written == [b"L1", b"R2", b"L3", b"R4"]
    assert not conn.busy and pool.reserved == 0


def test_a_working_handler_behind_a_later_answer_waits_its_turn_and_holds_the_rest() -> None:
    asyncio.run(_a_working_handler_behind_a_later_answer_waits_its_turn_and_holds_the_rest())


async def _a_working_handler_behind_a_later_answer_waits_its_turn_and_holds_the_rest() -> None:
    pool = MemoryPool(64 * MiB)
    conn, transport, log, gates = _pipelined_connection(pool)
    feed(conn, b"".join(frame(n) for n in (b"L1", b"W2", b"R3")))
    await _settle_loop()
    # W2 is dispatched but does not start before L1 is answered; R3 is not even dispatched
    assert log == ["dispatch L1", "dispatch W2"]
    gates["L1"].set_result(None)
    await _settle_loop()
    assert log == ["dispatch L1", "dispatch W2", "start W2", "dispatch R3"]
    assert transport.written == [b"L1", b"W2", b"R3"]
    assert not conn.busy and pool.reserved == 0


def test_closing_with_later_answers_pending_releases_everything() -> None:
    asyncio.run(_closing_with_later_answers_pending_releases_everything())


async def _closing_with_later_answers_pending_releases_everything() -> None:
    pool = MemoryPool(64 * MiB)
    conn, transport, log, gates = _pipelined_connection(pool)
    feed(conn, b"".join(frame(n) for n in (b"L1", b"L2", b"W3")))
    await _settle_loop()
    conn.connection_lost(None)
    await _settle_loop()
    assert pool.reserved == 0 and transport.written == []
