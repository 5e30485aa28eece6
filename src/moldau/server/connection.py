"""One client connection: size-prefixed frames in, ordered responses out.

Theory of operation: bytes arrive in ``data_received`` and are cut into frames. Each
frame goes to the dispatcher, which answers with a response (a list of chunks: bytes
and file slices) or an awaitable of one. Kafka answers the requests of a connection in
the order they came; so while an answer is pending, later frames wait in a queue, and
reading pauses when that queue is long (back-pressure on a client that pipelines).
Chunks that are file slices go out with ``loop.sendfile`` (zero-copy) when they are
large, and are read with ``os.pread`` when small, which costs less than a sendfile
round trip. Before either, a non-blocking probe (``preadv`` with ``RWF_NOWAIT``) asks
the page cache whether the slice is there; a cold slice (old data a lagging consumer
asks for) is read in a worker thread instead, so the event loop never waits on the
disk. A frame larger than ``socket.request.max.bytes`` or a negative size
closes the connection, as Kafka does; nothing one client sends can stop the others.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
MAX_QUEUED = 64
RECV_BUFFER = 256 * 1024
MIN_READ = 64 * 1024
LARGE_FRAME = 64 * 1024
SENDFILE_MIN_BYTES = 64 * 1024

Dispatch = Callable[[bytearray, "Connection"], Any]


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


def read_slice(fd: int, size: int, position: int) -> bytes:
    data = os.pread(fd, size, position)
    if len(data) != size:
        raise ConnectionError("segment shorter than the slice being sent")
    return data


class Connection(asyncio.BufferedProtocol):
    """A client connection, reading with ``recv_into`` straight into frame buffers.

    Small frames are cut out of one staging buffer (a copy of a few hundred bytes costs
    less than a system call per frame); a frame larger than ``LARGE_FRAME`` gets a
    buffer of its own, which the kernel fills directly, so a 1 MiB produce request is
    copied once, from the socket, and its records are then patched in place.
    """

    def __init__(self, dispatch: Dispatch, max_request_size: int, use_sendfile: bool = True) -> None:
        self._dispatch = dispatch
        self._max_request_size = max_request_size
        self._recv = bytearray(RECV_BUFFER)
        self._recv_view = memoryview(self._recv)
        self._start = 0  # first unparsed byte in the staging buffer
        self._end = 0  # end of the received bytes in the staging buffer
        self._frame: bytearray | None = None  # a large frame being received in place
        self._frame_filled = 0
        self._queue: collections.deque[bytearray] = collections.deque()
        self._busy = False
        self._closed = False
        self._paused = False
        self._use_sendfile = use_sendfile
        self.transport: asyncio.Transport | None = None
        self.peer: str = "?"
        self._task: asyncio.Task[None] | None = None

    # asyncio.BufferedProtocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._queue.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._frame is not None:
            return memoryview(self._frame)[self._frame_filled :]
        if RECV_BUFFER - self._end < MIN_READ and self._start:
            # move the unparsed tail to the front so the next read has room
            pending = self._end - self._start
            self._recv[:pending] = self._recv_view[self._start : self._end]
            self._start, self._end = 0, pending
        return self._recv_view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._frame is not None:
            self._frame_filled += nbytes
            if self._frame_filled < len(self._frame):
                return
            self._queue.append(self._frame)
            self._frame = None
        else:
            self._end += nbytes
            if not self._cut_frames():
                return
        self._frames_ready()

    def _cut_frames(self) -> bool:
        """Queue the complete frames in the staging buffer; False if the connection closed."""
        buf = self._recv
        pos, end = self._start, self._end
        while end - pos >= 4:
            (size,) = _SIZE.unpack_from(buf, pos)
            if size < 0 or size > self._max_request_size:
                log.warning(
                    "closing connection from %s: frame of %d bytes exceeds socket.request.max.bytes (%d)",
                    self.peer,
                    size,
                    self._max_request_size,
                )
                self.close()
                return False
            body = pos + 4
            if end - body >= size:
                self._queue.append(buf[body : body + size])
                pos = body + size
                continue
            if size > LARGE_FRAME:
                frame = bytearray(size)
                have = end - body
                frame[:have] = self._recv_view[body:end]
                self._frame, self._frame_filled = frame, have
                pos = end
            break
        if pos == end:
            self._start = self._end = 0
        else:
            self._start = pos
        return True

    def _frames_ready(self) -> None:
        if not self._busy:
            self._drain_queue()
        if len(self._queue) > MAX_QUEUED and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    # processing ------------------------------------------------------------------------

    def _drain_queue(self) -> None:
        """Handle queued frames in order. Answers that are ready at once are gathered
        and written together, one system call for a whole burst of pipelined requests."""
        ready: list[Any] = []
        while self._queue and not self._closed:
            frame = self._queue.popleft()
            try:
                result = self._dispatch(frame, self)
            except Exception:
                log.exception("unexpected error handling a request from %s; closing it", self.peer)
                self.close()
                return
            if result is None:
                continue  # acks=0 produce, or a request that gets no answer
            if isinstance(result, list):
                if not any(_is_slice(c) for c in result):
                    ready += result
                    continue
                result = self._send_chunks(result)
            if ready and not self._closed:
                self.transport.writelines(ready)  # type: ignore[union-attr]
            self._busy = True
            self._task = asyncio.ensure_future(self._finish(result))
            return
        if ready and not self._closed:
            self.transport.writelines(ready)  # type: ignore[union-attr]
        if self._paused and self.transport is not None and not self._closed:
            self._paused = False
            self.transport.resume_reading()

    async def _finish(self, pending: Awaitable[Any]) -> None:
        try:
            result = await pending
            if result is not None and not self._closed:
                await self._send_chunks(result)
        except asyncio.CancelledError:
            return
        except ConnectionError:
            self.close()
            return
        except Exception:
            log.exception("unexpected error answering %s; closing the connection", self.peer)
            self.close()
            return
        self._busy = False
        self._drain_queue()

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
            if not is_cached(fd, chunk.position, chunk.size):
                pending.append(await asyncio.to_thread(read_slice, fd, chunk.size, chunk.position))
            elif self._use_sendfile and chunk.size >= SENDFILE_MIN_BYTES:
                if pending:
                    transport.writelines(pending)
                    pending = []
                await loop.sendfile(transport, chunk.file, chunk.position, chunk.size)
            else:
                pending.append(read_slice(fd, chunk.size, chunk.position))
            if self._closed:
                return
        if pending:
            transport.writelines(pending)

    def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()

