"""One client connection: size-prefixed frames in, ordered responses out.

Theory of operation: bytes arrive in ``buffer_updated`` and are cut into frames. Each
frame goes to the dispatcher, which answers with a response (a list of chunks: bytes
and file slices) or an awaitable of one. Kafka answers the requests of a connection in
the order they came; so while an answer is pending, later frames wait in a queue, and
reading pauses when that queue is long (back-pressure on a client that pipelines).
One kind of pending answer lets the next requests through: a :class:`LaterAnswer`, the
answer of a request that has already done all it changes and only waits (an acks=all
produce waiting for its followers). Its later frames are handled at once, and their
answers queue behind it and go out in order; without that, each acks=all produce of a
pipelining producer would wait a whole replication round trip before the next one is
even appended, and a standing queue of one-record requests would build up.
Chunks that are file slices go out with ``loop.sendfile`` (zero-copy) when they are
large, after a non-blocking probe (``preadv`` with ``RWF_NOWAIT``) has found them in
the page cache; small ones are read with one ``preadv(RWF_NOWAIT)``, which costs less
than a sendfile round trip. A cold slice (old data a lagging consumer asks for) is read
in a worker thread instead, so the event loop never waits on the disk. A frame larger
than ``socket.request.max.bytes`` or a negative size closes the connection, as Kafka
does; nothing one client sends can stop the others.

Memory: what a connection holds is bounded by what its client has actually sent, and
all of it is counted in the broker-wide :class:`MemoryPool`
(``queued.max.request.bytes``). Reads land in a staging buffer shared by every
connection of the event loop (``get_buffer``, ``recv_into`` and ``buffer_updated`` of
one connection run back to back, never interleaved with another's); complete small
frames are copied out of it, and the partial tail of a read is kept as a small
``carry`` of its own. An idle connection therefore holds no receive buffer at all. A
large frame gets a buffer of its own that grows (fourfold) as its bytes arrive, never
allocated in full when its size is announced; each growth is reserved from the pool,
and when the pool is out of memory a connection that holds bytes stops reading
(Kafka mutes it) until a release wakes it -- except one frame at a time, which may finish past the
budget, so that a request larger than the whole budget cannot wedge the broker. The
frame's bytes go back to the pool when its handler is done with it.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from moldau.log_throttle import ThrottledLog
from moldau.security.authenticator import SaslAuthenticator
from moldau.security.listener_security import SecuredListener
from moldau.security.principal import ANONYMOUS, KafkaPrincipal
from moldau.server.limits import ConnectionRegistry
from moldau.server.memory_pool import MemoryPool

log = logging.getLogger(__name__)
closing_log = ThrottledLog(log, "closed or refused connections")

_SIZE = struct.Struct(">i")
MAX_QUEUED = 64
RECV_BUFFER = 256 * 1024
LARGE_FRAME = 64 * 1024
FRAME_GROWTH = 4  # a large frame's buffer holds at most this many times the bytes received
SENDFILE_MIN_BYTES = 64 * 1024
ZEROS_SIZE = 1024 * 1024
_ZEROS = memoryview(bytes(ZEROS_SIZE))

Dispatch = Callable[[bytearray, "Connection"], Any]


class LaterAnswer:
    """An answer still to come for a request that has done all its work (it only waits,
    e.g. for replication): the connection handles its next requests meanwhile and
    sends their answers after this one. The dispatcher wraps ``awaitable`` in it."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable


def _is_slice(chunk: Any) -> bool:
    return not isinstance(chunk, bytes | bytearray | memoryview)


_PROBE = bytearray(1)
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
PAGE = 4096


def is_cached(fd: int, position: int, size: int) -> bool:
    """Whether the first, middle and last pages of a file range are in the page cache."""
    if not _NOWAIT:
        return True
    probe = memoryview(_PROBE)
    for offset in {position, position + size // 2, position + size - 1}:
        try:
            os.preadv(fd, [probe], offset, _NOWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True  # the flag is unsupported on this file system: assume warm
    return True


def read_if_cached(fd: int, size: int, position: int) -> bytes | bytearray | None:
    """The slice, read with one non-blocking ``preadv(RWF_NOWAIT)``; None when part of
    it is not in the page cache (read it in a thread). One system call where a probe
    and a read took two to four: small slices go out with every replica fetch."""
    if not _NOWAIT:
        return read_slice(fd, size, position)
    buf = bytearray(size)
    try:
        got = os.preadv(fd, [buf], position, _NOWAIT)
    except BlockingIOError:
        return None
    except OSError:
        return read_slice(fd, size, position)  # the flag is unsupported here: assume warm
    return buf if got == size else None


def read_slice(fd: int, size: int, position: int) -> bytes:
    data = os.pread(fd, size, position)
    if len(data) != size:
        raise ConnectionError("segment shorter than the slice being sent")
    return data


TLS_RECORD = 16 * 1024


def coalesce(chunks: list[Any]) -> list[Any]:
    """Join runs of chunks smaller than a TLS record (16 KiB); larger ones pass as they are."""
    out: list[Any] = []
    run: list[Any] = []
    size = 0
    for chunk in chunks:
        n = len(chunk)
        if n >= TLS_RECORD:
            if run:
                out.append(b"".join(run) if len(run) > 1 else run[0])
                run, size = [], 0
            out.append(chunk)
            continue
        run.append(chunk)
        size += n
        if size >= TLS_RECORD:
            out.append(b"".join(run))
            run, size = [], 0
    if run:
        out.append(b"".join(run) if len(run) > 1 else run[0])
    return out


class StagingBuffer:
    """The receive buffer the connections of one event loop share (see the module doc)."""

    def __init__(self, size: int = RECV_BUFFER) -> None:
        self.buffer = bytearray(size)
        self.view = memoryview(self.buffer)


class Connection(asyncio.BufferedProtocol):
    """A client connection, reading with ``recv_into`` straight into frame buffers.

    Small frames are cut out of the shared staging buffer (a copy of a few hundred
    bytes costs less than a system call per frame); a frame larger than
    ``LARGE_FRAME`` gets a buffer of its own, which the kernel fills directly, so a
    1 MiB produce request is copied once, from the socket, and its records are then
    patched in place.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        max_request_size: int,
        use_sendfile: bool = True,
        *,
        pool: MemoryPool | None = None,
        staging: StagingBuffer | None = None,
        registry: ConnectionRegistry | None = None,
        listener_name: str = "PLAINTEXT",
        security: SecuredListener | None = None,
    ) -> None:
        self._dispatch = dispatch
        self._security = security
        self._tls = security is not None and security.ssl_context is not None
        self._max_request_size = max_request_size
        self._pool = pool if pool is not None else MemoryPool(-1)
        self._staging = staging if staging is not None else StagingBuffer()
        self._registry = registry
        self._carry = b""  # unparsed bytes of the last read: the start of a small frame
        self._carried = 0  # how many of them get_buffer put in front of the staging buffer
        self._frame: bytearray | None = None  # a large frame being received in place
        self._frame_size = 0  # its announced size
        self._frame_filled = 0
        self._grow_to = 0  # the frame's next buffer size, reserved, applied in get_buffer
        self._held = 0  # bytes this connection has reserved in the pool
        self._inflight = 0  # of which: the frames whose answers are pending
        self._queue: collections.deque[bytearray] = collections.deque()
        # answers to send in order behind a LaterAnswer: (its task, ready chunks or a
        # handler's awaitable still to run; the frame bytes it holds until answered)
        self._later: collections.deque[tuple[Any, int]] = collections.deque()
        self._overlap = True  # whether every answer in _later lets the next requests through
        self._busy = False
        self._closed = False
        self._paused = False
        self._queue_full = False
        self._memory_wait = False
        self._muted_until = 0.0  # a quota's throttle: nothing is read before (monotonic)
        self._use_sendfile = use_sendfile
        self.transport: asyncio.Transport | None = None
        self.peer: str = "?"
        self.ip: str = "?"
        #: who this connection acts as (set once TLS or SASL established it) and the
        #: listener it came in on: what ACLs and quotas key on
        self.principal: KafkaPrincipal = ANONYMOUS
        self.listener_name: str = listener_name
        #: the SASL state on a SASL listener (None elsewhere): the dispatcher lets only
        #: what it allows through (see moldau.security.authenticator)
        self.authenticator: SaslAuthenticator | None = None
        self.last_active = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """A request of this connection is being answered (it is not idle)."""
        return self._busy

    # asyncio.BufferedProtocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if peer:
            self.ip = peer[0]
            self.peer = f"{peer[0]}:{peer[1]}"
        if self._registry is not None:
            refused = self._registry.admit(self, self.ip)
            if refused is not None:
                closing_log("refused connection from %s: %s", self.peer, refused)
                self._closed = True
                transport.close()
                return
        security = self._security
        if security is not None:
            if security.principal_mapper is not None:
                try:  # (TLS is established by now: the loop calls this after the handshake)
                    self.principal = security.principal_mapper.principal(transport.get_extra_info("peercert"))
                except ValueError as exc:
                    closing_log("refused TLS connection from %s: %s", self.peer, exc)
                    self.close()
                    return
            if security.sasl is not None:
                self.authenticator = SaslAuthenticator(security.sasl)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._queue.clear()
        self._frame = None
        self._carry = b""
        self._pool.forget(id(self))
        self._pool.leave_lane(id(self))
        self._pool.release(self._held)
        self._held = self._inflight = 0
        if self._registry is not None:
            self._registry.remove(self, self.ip)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        for entry, _ in self._later:
            if isinstance(entry, asyncio.Future):
                entry.cancel()
            elif inspect.iscoroutine(entry):
                entry.close()
        self._later.clear()

    def get_buffer(self, sizehint: int) -> memoryview:
        frame = self._frame
        if frame is not None:
            if not self._grow_to and self._frame_filled == len(frame):
                # asked to read while waiting for memory (a loop that reads once more
                # after pause_reading): an empty buffer is an error, so take a little
                self._grow_to = min(self._frame_size, len(frame) + LARGE_FRAME)
                self._pool.reserve(self._grow_to - len(frame))
                self._held += self._grow_to - len(frame)
            if self._grow_to:
                # growing here, not in buffer_updated: the loop still holds the view
                # it passed to recv_into until buffer_updated returns
                missing = self._grow_to - len(frame)
                while missing > 0:  # (a slice of zeros: bytes(n) would fault in n fresh pages)
                    step = min(missing, ZEROS_SIZE)
                    frame += _ZEROS[:step]
                    missing -= step
                self._grow_to = 0
            return memoryview(frame)[self._frame_filled :]
        staging = self._staging
        carried = self._carried = len(self._carry)
        if carried:
            staging.buffer[:carried] = self._carry
        return staging.view[carried:]

    def buffer_updated(self, nbytes: int) -> None:
        self.last_active = time.monotonic()
        if self._closed:
            return
        frame = self._frame
        if frame is not None:
            filled = self._frame_filled = self._frame_filled + nbytes
            if filled < self._frame_size:
                if filled == len(frame):
                    self._grow_frame()
                return
            self._queue.append(frame)
            self._frame = None
            self._pool.leave_lane(id(self))
        elif not self._cut_frames(self._carried + nbytes):
            return
        self._frames_ready()

    def _cut_frames(self, end: int) -> bool:
        """Queue the complete frames in the staging buffer; False if the connection closed."""
        buf = self._staging.buffer
        queue = self._queue
        pos = 0
        taken = 0
        limit = self._max_request_size
        authenticator = self.authenticator
        if authenticator is not None and authenticator.principal is None:
            # not authenticated yet: Kafka reads no more than sasl.server.max.receive.size
            limit = min(limit, authenticator.settings.max_receive_size)
        while end - pos >= 4:
            (size,) = _SIZE.unpack_from(buf, pos)
            if size < 0 or size > limit:
                closing_log(
                    "closing connection from %s: frame of %d bytes exceeds %s (%d)",
                    self.peer,
                    size,
                    "socket.request.max.bytes" if limit == self._max_request_size else
                    "sasl.server.max.receive.size before authentication",
                    limit,
                )
                self.close()
                return False
            body = pos + 4
            if end - body >= size:
                queue.append(buf[body : body + size])
                taken += size
                pos = body + size
                continue
            if size > LARGE_FRAME:
                have = end - body
                self._frame, self._frame_size, self._frame_filled = buf[body:end], size, have
                taken += have
                pos = end
            break
        self._pool.reserve(taken)  # (held already: they arrived before we could refuse them)
        self._held += taken
        self._carry = bytes(self._staging.view[pos:end]) if pos < end else b""
        if self._frame is not None:
            self._grow_frame()
        return True

    def _grow_frame(self) -> None:
        """Reserve the next buffer size of the large frame being received, or wait."""
        frame = self._frame
        assert frame is not None
        target = min(self._frame_size, max(FRAME_GROWTH * self._frame_filled, LARGE_FRAME))
        delta = target - len(frame)
        pool = self._pool
        if pool.try_reserve(delta) or pool.reserve_in_lane(id(self), delta):
            self._held += delta
            self._grow_to = target
            if self._memory_wait:
                self._memory_wait = False
                self._update_reading()
        else:
            self._wait_for_memory(self._grow_frame)

    def _wait_for_memory(self, retry: Callable[[], None]) -> None:
        self._memory_wait = True
        self._update_reading()
        self._pool.wait(id(self), lambda: None if self._closed else retry())

    def _memory_freed(self) -> None:
        """Wake-up after frames were queued while the pool was out of memory."""
        if self._pool.out_of_memory and self._holds_requests():
            self._pool.wait(id(self), self._memory_freed)
            return
        self._memory_wait = False
        self._update_reading()

    def _frames_ready(self) -> None:
        if not self._busy or (self._later and self._overlap):
            self._drain_queue()
        if len(self._queue) > MAX_QUEUED and not self._queue_full:
            self._queue_full = True
            self._update_reading()
        if (
            self._pool.out_of_memory
            and self._holds_requests()
            and not self._memory_wait
            and not self._closed
        ):
            self._wait_for_memory(self._memory_freed)  # (holding none, it may read on)

    def _holds_requests(self) -> bool:
        """Whether complete frames of this connection wait for or are in a handler (a
        frame still arriving has its memory reserved already, or waits for it)."""
        return bool(self._queue or self._inflight)

    def _update_reading(self) -> None:
        """Read while neither the queue is long nor the pool out of memory."""
        transport = self.transport
        if transport is None or self._closed:
            return
        pause = self._queue_full or self._memory_wait or self._muted_until > 0
        if pause and not self._paused:
            self._paused = True
            transport.pause_reading()
        elif not pause and self._paused:
            self._paused = False
            transport.resume_reading()

    def mute_for(self, seconds: float) -> None:
        """Read nothing more from this client for ``seconds`` (a quota's throttle time,
        as Kafka mutes a throttled channel): it cannot send its next request before."""
        if self._closed or seconds <= 0:
            return
        until = time.monotonic() + seconds
        if until <= self._muted_until:
            return
        first = self._muted_until == 0
        self._muted_until = until
        self._update_reading()
        if first:
            asyncio.get_running_loop().call_later(seconds, self._unmute)

    def _unmute(self) -> None:
        left = self._muted_until - time.monotonic()
        if left > 0.001:  # extended meanwhile
            asyncio.get_running_loop().call_later(left, self._unmute)
            return
        self._muted_until = 0.0
        self._update_reading()
        if self._queue and not self._closed and (not self._busy or (self._later and self._overlap)):
            self._drain_queue()

    # processing ------------------------------------------------------------------------

    def _drain_queue(self) -> None:
        """Handle queued frames in order. Answers that are ready at once are gathered
        and written together, one system call for a whole burst of pipelined requests."""
        ready: list[Any] = []
        freed = 0  # bytes of the frames handled, released in one call
        later = self._later
        while self._queue and not self._closed:
            if later and (not self._overlap or len(later) >= MAX_QUEUED):
                break  # the rest waits until what is pending has been answered
            if self._muted_until:
                break  # throttled: requests read before the mute wait for it too (Kafka
                # reads one request at a time, so the rest wait in its socket buffer)
            frame = self._queue.popleft()
            try:
                result = self._dispatch(frame, self)
            except Exception:
                log.exception("unexpected error handling a request from %s; closing it", self.peer)
                self.close()
                return
            if result is None:
                freed += len(frame)
                continue  # acks=0 produce, or a request that gets no answer
            if later or isinstance(result, LaterAnswer):
                if not later:
                    self._release(freed)
                    freed = 0
                    if ready and not self._closed:
                        self.transport.writelines(ready)  # type: ignore[union-attr]
                        ready = []
                    self._busy = True
                    self._task = asyncio.ensure_future(self._send_later())
                freed += self._queue_later(result, len(frame))
                continue
            if isinstance(result, list):
                freed += len(frame)
                if not any(_is_slice(c) for c in result):
                    ready += result
                    continue
                result = self._send_chunks(result)
            else:
                self._inflight += len(frame)  # the handler still reads the frame
            self._release(freed)
            if ready and not self._closed:
                self._write(ready)
            self._busy = True
            self._task = asyncio.ensure_future(self._finish(result))
            return
        self._release(freed)
        if ready and not self._closed:
            self._write(ready)
            self.last_active = time.monotonic()
        if self._queue_full and not self._closed and len(self._queue) <= MAX_QUEUED:
            self._queue_full = False
            self._update_reading()

    def _queue_later(self, result: Any, size: int) -> int:
        """Queue an answer behind a LaterAnswer; the frame bytes releasable at once."""
        if isinstance(result, LaterAnswer):
            # its work is done; it waits (concurrently with the next requests)
            self._later.append((asyncio.ensure_future(result.awaitable), size))
            self._inflight += size
            return 0
        if isinstance(result, list):
            if any(_is_slice(c) for c in result):
                self._overlap = False  # file slices are read when sent: nothing may change first
            self._later.append((result, 0))
            return size
        # a handler that still works: it runs in its turn, after the answers before it
        # are sent, and nothing after it starts until it is done (as without LaterAnswer)
        self._overlap = False
        self._later.append((result, size))
        self._inflight += size
        return 0

    async def _send_later(self) -> None:
        """Send the queued answers in order, each once it is ready; the answers ready
        behind it (a high watermark move completes many produces at once) go out with
        it, in one write."""
        later = self._later
        try:
            while later and not self._closed:
                entry, size = later[0]
                result = entry if isinstance(entry, list) else await entry
                later.popleft()
                released = size
                out: list[Any] = [] if result is None else list(result)
                while later:
                    entry, size = later[0]
                    if isinstance(entry, list):
                        result = entry
                    elif isinstance(entry, asyncio.Future) and entry.done():
                        result = entry.result()
                    else:
                        break
                    later.popleft()
                    released += size
                    if result is not None:
                        out += result
                if released:
                    self._inflight -= released
                    self._release(released)
                if out and not self._closed:
                    await self._send_chunks(out)
                if not later:
                    self._overlap = True
                elif self._overlap and self._queue:
                    self._drain_queue()  # room for more behind the pending answers
        except asyncio.CancelledError:
            return
        except Exception as exc:
            self._close_after_failed_answer(exc)
            return
        self.last_active = time.monotonic()
        self._overlap = True
        self._busy = False
        self._drain_queue()

    def _close_after_failed_answer(self, exc: Exception) -> None:
        """An answer could not be made or sent: close the connection, logging the
        failure unless it is the peer going away (a ConnectionError)."""
        if not isinstance(exc, ConnectionError):
            log.error("unexpected error answering %s; closing the connection", self.peer, exc_info=exc)
        self.close()

    def _release(self, size: int) -> None:
        if size and not self._closed:  # (once closed, connection_lost releases all)
            self._held -= size
            self._pool.release(size)
            if self._memory_wait and self._frame is None and not self._holds_requests():
                self._pool.forget(id(self))
                self._memory_wait = False
                self._update_reading()

    async def _finish(self, pending: Awaitable[Any]) -> None:
        try:
            result = await pending
            self._release_inflight()
            if result is not None and not self._closed:
                await self._send_chunks(result)
        except asyncio.CancelledError:
            return
        except Exception as exc:
            self._close_after_failed_answer(exc)
            return
        finally:
            self._release_inflight()
        self.last_active = time.monotonic()
        self._busy = False
        self._drain_queue()

    def _release_inflight(self) -> None:
        size, self._inflight = self._inflight, 0
        self._release(size)

    async def _send_chunks(self, chunks: list[Any]) -> None:
        transport = self.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        pending: list[Any] = []
        for chunk in chunks:
            if not _is_slice(chunk):
                pending.append(chunk)
                continue
            fd = chunk.file.fileno()
            if self._use_sendfile and chunk.size >= SENDFILE_MIN_BYTES:
                if not is_cached(fd, chunk.position, chunk.size):
                    pending.append(await asyncio.to_thread(read_slice, fd, chunk.size, chunk.position))
                else:
                    if pending:
                        self._write(pending)
                        pending = []
                    await loop.sendfile(transport, chunk.file, chunk.position, chunk.size)
            else:
                data = read_if_cached(fd, chunk.size, chunk.position)
                if data is None:
                    data = await asyncio.to_thread(read_slice, fd, chunk.size, chunk.position)
                pending.append(data)
            if self._closed:
                return
        if pending:
            self._write(pending)

    def _write(self, chunks: list[Any]) -> None:
        """Write byte chunks. On TLS each write is encrypted into records of its own, so
        runs of small chunks (a fetch answer's headers between its slices, a burst of
        small answers) are joined first: fewer records, fewer encryptions, fewer bytes."""
        transport = self.transport
        assert transport is not None
        if self._tls and len(chunks) > 1:
            chunks = coalesce(chunks)
        transport.writelines(chunks)

    def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()
