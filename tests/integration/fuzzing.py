"""A protocol fuzzer: valid request frames of every served API and version, mutated,
sent to a real broker process over raw sockets, with the broker's health checked after
every batch.

Theory of operation:

* **Seeds** (``fuzz_frames.py``). For each API the broker registers
  (``moldau.handlers.registry.HANDLERS``) and each version it serves, :func:`seed_frames` fills the codec's request class from
  its schema with plausible values (existing topic names, small timeouts, real record
  batches built with ``moldau.records.build_batch``, plain and compressed) and encodes it
  with the project's own encoder. The seeds are valid: ``test_fuzz.py`` checks that the
  broker answers every one of them.
* **Mutations** (``fuzz_frames.py``). :class:`Mutator` derives a hostile frame from a
  seed with one or two of: bit flips, bytes or 2/4/8-byte words replaced by interesting values (0, -1, 0x7f..,
  0x80..), truncation, extension, a tampered size prefix, an array count made null, huge
  or negative (its position is found by encoding the request with the array null and
  empty and diffing), a field of the request object set to an interesting value or to
  null before encoding, a record batch changed inside with its CRC recomputed (so record
  validation is reached), a splice of two frames of different APIs, and a changed API
  key or version in the header. Every frame carries a label saying what was done.
* **Delivery.** :func:`send_batch` spreads a batch of frames over many connections,
  pipelined, with one selector thread that writes and reads at once. A connection is
  fine when the broker answers every complete frame on it (as the broker's framing sees
  the byte stream) or closes it; a **hang** is neither within the timeout. Requests
  that may park by design (Fetch long-poll, JoinGroup and SyncGroup waiting for a
  rebalance) get a few seconds and are then counted as *parked*, not as hangs; a
  Produce with acks=0 is expected to get no answer at all. A hang is replayed alone to
  tell whether it reproduces.
* **Health.** :class:`Fuzzer` checks after every batch that the process lives, answers
  a fresh ApiVersions, that its resident memory stays under a bound, and that the log
  written meanwhile holds no traceback; every so many batches, that a real client
  (confluent-kafka) still creates a topic, produces and consumes. A batch that leaves a
  traceback is replayed frame by frame to name the frame that caused it (a reproducer).

Everything is driven by one ``random.Random(seed)``: a seed and a frame count give the
same frames every time (the broker's answers may differ with timing, not the frames).
"""

from __future__ import annotations

import dataclasses
import random
import re
import selectors
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import moldau.handlers  # noqa: F401 - registers the handlers
from moldau.handlers.registry import HANDLERS
from moldau.protocol.header import decode_request_header

from . import raw_kafka as raw
from .fuzz_frames import TOPICS, Frame, Mutator, seed_frames

# APIs whose requests may legitimately wait (long-poll, rebalance): not hangs
PARKING_APIS = frozenset({1, 11, 14})
PARK_WAIT_S = 3.0
TRACEBACK_MARKERS = ("Traceback", "unexpected error", "handler failed")


# ---------------------------------------------------------------------- delivery
def broker_view(stream: bytes, max_size: int = 100 * 1024 * 1024) -> tuple[int, bool]:
    """(complete frames the broker can read, whether it must close) for a byte stream."""
    pos = 0
    complete = 0
    while pos + 4 <= len(stream):
        (size,) = struct.unpack_from(">i", stream, pos)
        if size <= 0 or size > max_size:
            return complete, True
        if pos + 4 + size > len(stream):
            return complete, False
        complete += 1
        pos += 4 + size
    return complete, False


@dataclasses.dataclass
class BatchResult:
    sent: int = 0
    answered: int = 0
    closed: int = 0
    hangs: list[list[Frame]] = dataclasses.field(default_factory=list)
    parked: int = 0


class _Conn:
    def __init__(self, sock: socket.socket, frames: list[Frame]) -> None:
        self.sock = sock
        self.frames = frames
        self.out = memoryview(b"".join(f.data for f in frames))
        stream = bytes(self.out)
        self.expected = broker_view(stream)[0] - _silent_frames(stream)
        self.inbuf = bytearray()
        self.answers = 0
        self.done = False
        self.closed = False
        self.deadline = 0.0


def send_batch(bootstrap: str, groups: list[list[Frame]], connections: int, timeout: float,
               should_stop: Callable[[], bool] | None = None) -> BatchResult:
    """Send each group of frames pipelined on a connection of its own, ``connections``
    at a time; see the module doc for what counts as answered, closed, hung, parked.
    Stops early when the broker refuses connections or ``should_stop()`` (asked twice a
    second) says so, e.g. because its memory ran away."""
    host, port = bootstrap.rsplit(":", 1)
    result = BatchResult()
    sel = selectors.DefaultSelector()
    waiting = list(reversed(groups))
    live: list[_Conn] = []
    finished: list[_Conn] = []
    deadline = time.monotonic() + timeout

    def open_next() -> None:
        try:
            sock = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            waiting.clear()  # the broker is gone or stuck: the health check tells which
            return
        conn = _Conn(sock, waiting.pop())
        conn.sock.setblocking(False)
        # a request that may park (long-poll) is given a short while, then counted parked
        parks = any(f.api_key in PARKING_APIS for f in conn.frames)
        conn.deadline = time.monotonic() + (min(timeout, PARK_WAIT_S) if parks else timeout)
        live.append(conn)
        sel.register(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    next_check = 0.0
    try:
        while waiting or live:
            while waiting and len(live) < connections:
                open_next()
            if should_stop is not None and time.monotonic() > next_check:
                next_check = time.monotonic() + 0.5
                if should_stop():
                    break
            for key, events in sel.select(timeout=0.2):
                conn = key.data
                if events & selectors.EVENT_WRITE and conn.out:
                    try:
                        n = conn.sock.send(conn.out[:262144])
                        conn.out = conn.out[n:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        conn.out = memoryview(b"")
                    if not conn.out:
                        sel.modify(conn.sock, selectors.EVENT_READ, conn)
                        # nothing (more) to wait for: acks=0 produce, incomplete last frame
                        conn.done = conn.answers >= conn.expected
                if events & selectors.EVENT_READ:
                    try:
                        data = conn.sock.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        conn.closed = conn.done = True
                    else:
                        conn.inbuf += data
                        conn.answers += _count_frames(conn.inbuf)
                        conn.done = conn.answers >= conn.expected and not conn.out
            now = time.monotonic()
            for conn in [c for c in live if c.done or now > c.deadline]:
                live.remove(conn)
                sel.unregister(conn.sock)
                conn.sock.close()
                finished.append(conn)
            if now > deadline + timeout:  # a broker too slow for anything: stop here
                break
        for conn in finished + live:
            result.sent += len(conn.frames)
            result.answered += conn.answers
            if conn.closed:
                result.closed += 1
            elif not conn.done:
                if any(f.api_key in PARKING_APIS for f in conn.frames):
                    result.parked += 1
                else:
                    result.hangs.append(conn.frames)
    finally:
        sel.close()
        for conn in live:
            conn.sock.close()
    return result


def _silent_frames(stream: bytes) -> int:
    """How many complete frames of ``stream`` are Produce requests with acks=0, which a
    broker does not answer (as Kafka, it answers nothing unless it closes the socket)."""
    codec = HANDLERS[0].codec
    silent = 0
    pos = 0
    while pos + 4 <= len(stream):
        (size,) = struct.unpack_from(">i", stream, pos)
        if size <= 0 or pos + 4 + size > len(stream):
            break
        data = stream[pos + 4:pos + 4 + size]
        pos += 4 + size
        if len(data) < 8 or struct.unpack_from(">h", data)[0] != 0:
            continue
        version = struct.unpack_from(">h", data, 2)[0]
        try:
            header = decode_request_header(data, codec.api.is_flexible(version))
            silent += codec.decode_request(version, data, header.header_size).acks == 0
        except Exception:  # noqa: BLE001, S112 - undecodable: the broker closes instead
            continue
    return silent


def _count_frames(buf: bytearray) -> int:
    """Consume whole response frames from ``buf``; how many there were."""
    n = 0
    while len(buf) >= 4:
        (size,) = struct.unpack_from(">i", buf, 0)
        if len(buf) < 4 + size:
            break
        del buf[: 4 + size]
        n += 1
    return n


# --------------------------------------------------------------------- the fuzzer
@dataclasses.dataclass
class Finding:
    kind: str  # "traceback", "hang", "crash", "rss"
    detail: str
    frames: list[Frame] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Stats:
    frames: int = 0
    batches: int = 0
    answered: int = 0
    closed_connections: int = 0
    parked: int = 0
    crashes: int = 0
    hangs: int = 0
    tracebacks: int = 0
    peak_rss_mb: float = 0.0
    seconds: float = 0.0
    findings: list[Finding] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        rate = self.frames / self.seconds if self.seconds else 0.0
        return (f"frames sent {self.frames}, crashes {self.crashes}, hangs {self.hangs}, "
                f"tracebacks {self.tracebacks}, peak RSS {self.peak_rss_mb:.0f} MB, "
                f"{rate:.0f} frames/s ({self.answered} answers, {self.closed_connections} "
                f"connections closed by the broker, {self.parked} parked)")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc."""
    text = Path(f"/proc/{pid}/status").read_text()
    values = {k: int(v.split()[0]) / 1024 for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", text, re.M)}
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def tracebacks_in(text: str) -> list[str]:
    """Each traceback or error report in a log excerpt: its first line and last 5."""
    found = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not any(m in lines[i] for m in TRACEBACK_MARKERS):
            i += 1
            continue
        end = i + 1
        while end < len(lines):
            if lines[end].startswith((" ", "Traceback", "During", "The above", "\t")) or not lines[end].strip():
                end += 1
            elif end + 2 < len(lines) and lines[end + 2].startswith(("The above", "During handling")):
                end += 3  # a chained exception: one report, not two
            else:
                break
        if end < len(lines) and any(ln.startswith("Traceback") for ln in lines[i:end]):
            end += 1  # the exception's own line
        found.append("\n".join([lines[i], *lines[max(i + 1, end - 5):end]]))
        i = end
    return found


def signature(tail: str) -> str:
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    where = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
    last = lines[-1] if lines else ""
    return (where[-1] if where else "") + " | " + re.sub(r"\d+", "N", last)[:120]


class Fuzzer:
    """Runs batches of mutated frames against ``broker`` (a ``broker_process.Broker``)."""

    def __init__(self, broker: Any, seed: int, *, batch_size: int = 500, connections: int = 16,
                 hang_timeout: float = 20.0, rss_limit_mb: float = 1024.0,
                 roundtrip_every: int = 10, replay: bool = True, exclude: str | None = None,
                 max_hangs: int | None = 50) -> None:
        self.broker = broker
        self.rng = random.Random(seed)
        self.seeds = seed_frames(self.rng)
        self.mutator = Mutator(self.seeds, self.rng)
        self.batch_size = batch_size
        self.connections = connections
        self.hang_timeout = hang_timeout
        self.rss_limit_mb = rss_limit_mb
        self.roundtrip_every = roundtrip_every
        self.replay = replay
        self.exclude = re.compile(exclude) if exclude else None
        self.max_hangs = max_hangs
        self.stats = Stats()
        self.log_mark = broker.log_size()
        self.known: set[str] = set()

    def prepare(self) -> None:
        """Topics and a group the seeds name, so requests reach the handlers' depths."""
        from .kafka_helpers import create_topic

        for t in TOPICS:
            create_topic(self.broker.bootstrap, t, partitions=2)

    def run(self, frames: int, deadline_s: float | None = None, progress: Any = None) -> Stats:
        start = time.monotonic()
        while self.stats.frames < frames:
            if deadline_s is not None and time.monotonic() - start > deadline_s:
                break
            n = min(self.batch_size, frames - self.stats.frames)
            self.run_batch(self.make_batch(n))
            self.stats.seconds = time.monotonic() - start
            if progress is not None:
                progress(self.stats)
            if self.stats.crashes or (self.max_hangs is not None and self.stats.hangs > self.max_hangs):
                break
        self.stats.seconds = time.monotonic() - start
        return self.stats

    def make_batch(self, n: int) -> list[list[Frame]]:
        """``n`` mutated frames in groups of 1-4 pipelined on one connection."""
        groups: list[list[Frame]] = []
        left = n
        while left > 0:
            k = min(left, self.rng.choice((1, 1, 2, 3, 4)))
            group = [self.mutator.one() for _ in range(k)]
            if self.exclude is not None:
                group = [f for f in group if not self.exclude.search(f.label)]
            if group:
                groups.append(group)
            left -= k
        return groups

    def run_batch(self, batch: list[list[Frame]]) -> None:
        st = self.stats
        result = send_batch(self.broker.bootstrap, batch, self.connections, self.hang_timeout,
                            should_stop=self._runaway)
        st.frames += result.sent
        st.batches += 1
        st.answered += result.answered
        st.closed_connections += result.closed
        st.parked += result.parked
        st.hangs += len(result.hangs)
        healthy = False
        if st.crashes:
            pass
        elif not self.broker.is_running():
            st.crashes += 1
            st.findings.append(Finding("crash", f"exit code {self.broker.proc.returncode}: "
                                       + self.broker.log_text(self.log_mark)[-2000:]))
        elif not self._answers_api_versions():
            st.crashes += 1
            st.findings.append(Finding("crash", f"no ApiVersions answer within {self.hang_timeout:.0f}s"))
        else:
            healthy = True
        for group in result.hangs:
            if healthy:  # replayed alone on a healthy broker: does it hang again?
                again = send_batch(self.broker.bootstrap, [group], 1, self.hang_timeout).hangs
                detail = "unanswered and not closed, " + ("again when replayed alone" if again
                                                          else "answered when replayed alone")
            else:
                detail = "unanswered and not closed while the broker stopped answering"
            st.findings.append(Finding("hang", detail, group))
        if not healthy:
            return
        current, peak = rss_mb(self.broker.pid)
        st.peak_rss_mb = max(st.peak_rss_mb, peak)
        if current > self.rss_limit_mb:
            st.findings.append(Finding("rss", f"RSS {current:.0f} MB over {self.rss_limit_mb:.0f} MB"))
        if self.roundtrip_every and st.batches % self.roundtrip_every == 0:
            from .kafka_helpers import roundtrip_ok

            roundtrip_ok(self.broker.bootstrap)
        tails = self._new_tracebacks()
        if tails:
            st.tracebacks += len(tails)
            fresh = [t for t in tails if signature(t) not in self.known]
            for t in fresh:
                self.known.add(signature(t))
            if fresh and self.replay:
                self._replay(batch, {signature(t) for t in fresh})
            elif fresh:
                st.findings += [Finding("traceback", t) for t in fresh]

    def _runaway(self) -> bool:
        """Whether the broker died or its memory passed twice the bound (a stalled broker
        allocating without end must not take the machine down with it)."""
        if not self.broker.is_running():
            return True
        try:
            current, _ = rss_mb(self.broker.pid)
        except OSError:
            return True
        self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, current)
        if current <= 2 * self.rss_limit_mb:
            return False
        self.stats.findings.append(Finding("rss", f"RSS {current:.0f} MB during a batch: stopped"))
        self.stats.crashes += 1
        return True

    def _answers_api_versions(self) -> bool:
        try:
            with raw.connect(self.broker.bootstrap, timeout=self.hang_timeout) as sock:
                sock.sendall(raw.request(raw.API_VERSIONS, 0, 1))
                return raw.read_response(sock) is not None
        except OSError:
            return False

    def _new_tracebacks(self) -> list[str]:
        size = self.broker.log_size()
        text = self.broker.log_text(self.log_mark)
        self.log_mark = size
        return tracebacks_in(text)

    def _replay(self, batch: list[list[Frame]], wanted: set[str]) -> None:
        """Send the batch's frames one at a time to name the one behind each traceback."""
        for fr in (f for group in batch for f in group):
            if not wanted:
                return
            send_batch(self.broker.bootstrap, [[fr]], 1, min(self.hang_timeout, 5.0))
            if not self.broker.is_running():
                return
            for tail in self._new_tracebacks():
                sig = signature(tail)
                if sig in wanted:
                    wanted.discard(sig)
                    self.stats.findings.append(Finding("traceback", tail, [fr]))
        for sig in wanted:  # caused by the interplay of frames, not one alone
            self.stats.findings.append(Finding("traceback", sig))


def describe(finding: Finding) -> str:
    out = f"[{finding.kind}] {finding.detail}"
    for fr in finding.frames:
        data = fr.data
        shown = data.hex() if len(data) <= 400 else data[:400].hex() + "..."
        out += f"\n  frame: {fr.label}\n    bytes ({len(data)}): {shown}"
    return out
