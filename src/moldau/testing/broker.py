"""``moldau.testing.Broker``: a real Moldau broker for a test, and the faults it can play.

Theory of operation: a broker runs either **in a thread** of the test process (the
default: the broker's own event loop in a daemon thread, started in ~30 ms once Moldau
is imported, because a new Python process spends seconds importing on a busy machine)
or **as a process** (``process=True``: ``python -m moldau.testing.process``, for a
real SIGKILL and SIGSTOP). Both serve the same data directory layout, on a loopback
port chosen at the first start and kept across restarts, from a fresh temp folder
removed at :meth:`close` (unless the caller gave ``data_dir``).

Every fault goes through :class:`~moldau.testing.control.Controls`, run on the
broker's loop: directly (``run_coroutine_threadsafe``) for a thread, over the control
Unix socket for a process. ``kill()`` of a thread broker is an unclean stop (no
controlled shutdown, no final flush or checkpoints, connections reset), so the restart
recovers the logs as after a crash; ``pause()`` holds every request on the loop. A
process broker is SIGKILLed and SIGSTOPped for real.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from moldau.testing.control import ControlClient, ControlError, Controls
from moldau.testing.faults import FaultInjector

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)


#: What a test broker changes from Kafka's defaults, as Confluent's and testcontainers'
#: single-node set-ups do: internal topics of one partition (a fresh broker's first
#: group commit creates ``__consumer_offsets``: 50 partitions cost ~0.2 s, one ~5 ms) and
#: no 3 s wait before a new group's first rebalance. A test's own settings win.
TEST_DEFAULTS: dict[str, str] = {
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
}


#: brokers not closed yet: at exit a process is killed (it runs in a session of its own,
#: so nothing else would end it) and the temp folder removed
_UNCLOSED: set[Broker] = set()


@atexit.register
def _clean_up_leftovers() -> None:
    for broker in list(_UNCLOSED):
        with contextlib.suppress(Exception):
            if broker.process:
                broker.kill()
            shutil.rmtree(broker.work_dir, ignore_errors=True)


class BrokerError(RuntimeError):
    """The broker did not start or stop as expected (the message has its log's end)."""


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _settings(settings: dict[str, object] | None) -> dict[str, str]:
    """Kafka property names, also from keywords: ``num_partitions=3`` is ``num.partitions``."""
    out = {}
    for key, value in (settings or {}).items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out[key if "." in key else key.replace("_", ".")] = text  # listener.name.sasl_ssl... stays
    return out


class Broker:
    """One Moldau broker for a test: ``with Broker() as b: ... b.bootstrap ...``.

    ``settings`` are broker properties by Kafka's name (``{"num.partitions": 3}``);
    ``process=True`` runs it as a process (real kill -9 and SIGSTOP; start-up costs a
    Python interpreter's); ``cluster`` (an ``etcd://`` URL) and ``broker_id`` make it
    a member of a cluster (see :class:`moldau.testing.Cluster`).
    """

    def __init__(
        self,
        settings: dict[str, object] | None = None,
        *,
        process: bool = False,
        data_dir: str | Path | None = None,
        port: int = 0,
        cluster: str | None = None,
        broker_id: int | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.settings = {**TEST_DEFAULTS, **_settings(settings)}
        if broker_id is not None:
            self.settings["node.id"] = self.settings["broker.id"] = str(broker_id)
        self.broker_id = int(self.settings.get("node.id", self.settings.get("broker.id", 0)))
        self.process = process or cluster is not None
        self.cluster_url = cluster
        self.log_level = log_level
        self.host = "127.0.0.1"
        self.port = port
        self._own_dir = data_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="moldau-test-"))
        self.data_dir = Path(data_dir) if data_dir is not None else self.work_dir / "data"
        self.log_path = self.work_dir / "broker.log"
        self.control_path = self.work_dir / "control.sock"
        self.started_in_s = 0.0
        self.paused = False
        _UNCLOSED.add(self)
        # a thread broker
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._hooks: Any = None
        self._controls: Controls | None = None
        self._failure: BaseException | None = None
        # a process broker
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: ControlClient | None = None

    # -- information ------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def is_running(self) -> bool:
        if self.process:
            return self.proc is not None and self.proc.poll() is None
        return self._thread is not None and self._thread.is_alive()

    def log_text(self) -> str:
        """What a process broker wrote (a thread broker logs through ``logging``)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- life cycle -------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> Broker:
        if self.is_running():
            raise BrokerError(f"broker {self.bootstrap} is already running")
        began = time.perf_counter()
        if self.process:
            self._start_process(timeout)
        else:
            self._start_thread(timeout)
        self.started_in_s = time.perf_counter() - began
        self.paused = False
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """A clean stop (a controlled shutdown in a cluster), as SIGTERM gives."""
        if self.paused:
            self.resume()
        if self.process:
            self._stop_process(signal.SIGTERM, timeout)
        else:
            self._stop_thread(crash=False, timeout=timeout)

    def kill(self) -> None:
        """Stop at once, as ``kill -9``: nothing flushed or checkpointed on the way out."""
        if self.process:
            self._stop_process(signal.SIGKILL, STOP_TIMEOUT_S)
        else:
            if self.paused:
                self.resume()
            self._stop_thread(crash=True, timeout=STOP_TIMEOUT_S)
        self.paused = False

    def restart(self, *, kill: bool = True, timeout: float = START_TIMEOUT_S) -> Broker:
        """Kill (or, with ``kill=False``, stop cleanly) and start again on the same port
        and data: what was acknowledged is still there."""
        if self.is_running():
            if kill:
                self.kill()
            else:
                self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop and remove the temp folder. A broker whose data is about to be removed
        is killed, not stopped: a clean stop's flushes, checkpoints and fsyncs would be
        thrown away (this halves a fixture's teardown); one given a ``data_dir`` stops
        cleanly."""
        try:
            if self.is_running():
                try:
                    if self._own_dir:
                        self.kill()
                    else:
                        self.stop(timeout=10)
                except BrokerError:
                    self.kill()
        finally:
            if self._client is not None:
                self._client.close()
            shutil.rmtree(self.work_dir, ignore_errors=True)
            _UNCLOSED.discard(self)

    def __enter__(self) -> Broker:
        if not self.is_running():
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Broker:
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.close)

    # -- faults -----------------------------------------------------------------------

    def call(self, op: str, **args: Any) -> Any:
        """Run a :class:`~moldau.testing.control.Controls` operation on the broker."""
        if not self.is_running():
            raise BrokerError(f"broker {self.bootstrap} is not running")
        if self.process:
            assert self._client is not None
            return self._client.call(op, **args)
        assert self._loop is not None and self._controls is not None
        future = asyncio.run_coroutine_threadsafe(self._controls.call(op, args), self._loop)
        return future.result(timeout=STOP_TIMEOUT_S)

    def push_errors(self, api: str | int, *errors: str | int, delay_ms: float = 0) -> None:
        """The next requests of ``api`` answer ``errors``, one each, in order
        (``rd_kafka_mock_push_request_errors``; with ``delay_ms``, each after that delay
        as ``rd_kafka_mock_broker_push_request_error_rtts``)."""
        self.call("push_errors", api=api, errors=list(errors), delay_ms=delay_ms)

    def fail(self, api: str | int, error: str | int, count: int = 1, delay_ms: float = 0) -> None:
        """The next ``count`` requests of ``api`` answer ``error``."""
        self.push_errors(api, *([error] * count), delay_ms=delay_ms)

    def clear_errors(self, api: str | int | None = None) -> None:
        self.call("clear_errors", api=api)

    def reset_faults(self) -> None:
        """No injected error, latency or pause left (a paused process is continued)."""
        if self.paused:
            self.resume()
        self.call("reset")
        self.call("set_up")

    def set_latency(self, ms: float, api: str | int | None = None) -> None:
        """Answer ``api`` (every API: None) ``ms`` later (``rd_kafka_mock_broker_set_rtt``); 0 ends it."""
        self.call("set_latency", api=api, ms=ms)

    def drop_connections(self) -> int:
        """Reset every client connection; how many there were."""
        return int(self.call("drop_connections"))

    def set_down(self) -> int:
        """Refuse connections and reset the open ones until :meth:`set_up`, keeping all
        state (``rd_kafka_mock_broker_set_down``); how many connections were reset."""
        return int(self.call("set_down"))

    def set_up(self) -> None:
        """Accept connections again on the same port (``rd_kafka_mock_broker_set_up``)."""
        self.call("set_up")

    def pause(self) -> None:
        """Stop answering (SIGSTOP for a process, requests held for a thread)."""
        if self.process:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP)
        else:
            self.call("pause")
        self.paused = True

    def resume(self) -> None:
        if self.process:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
        else:
            self.call("resume")
        self.paused = False

    @contextlib.contextmanager
    def paused_for(self) -> Any:
        """``with broker.paused_for(): ...``: paused inside, resumed on the way out."""
        self.pause()
        try:
            yield self
        finally:
            self.resume()

    def rebalance(self, group_id: str) -> dict[str, Any]:
        """Force ``group_id`` (coordinated by this broker) to rebalance now; says which
        protocol the group speaks and its generation (classic, before the rebalance)
        or new epoch (KIP-848)."""
        return dict(self.call("rebalance", group_id=group_id))

    def counts(self) -> dict[str, dict[str, int]]:
        """Requests seen and errors injected, per API key."""
        return dict(self.call("counts"))

    # -- a broker in a thread ---------------------------------------------------------

    def _start_thread(self, timeout: float) -> None:
        from moldau.broker.broker import Endpoint
        from moldau.broker.runner import ServeHooks, serve
        from moldau.config.broker import BrokerConfig

        config = BrokerConfig(dict(self.settings))
        ready = threading.Event()
        controls = Controls(FaultInjector())
        self._failure = None

        def started(broker: Any, servers: list[Any]) -> None:
            controls.started(broker, servers)
            if self.port == 0:
                self.port = int(servers[0].port)
            ready.set()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._hooks = ServeHooks(self._stop, started, controls.faults)
            await serve(config, self.data_dir, Endpoint(self.host, self.port), None, time.perf_counter(),
                        None, hooks=self._hooks)

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                self._failure = exc
            finally:
                ready.set()

        self._controls = controls
        self._thread = threading.Thread(target=run, name=f"moldau-broker-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or self._failure is not None or not self._thread.is_alive():
            failure = self._failure
            if self._thread.is_alive():
                self._stop_thread(crash=True, timeout=5)
            raise BrokerError(f"the broker did not start: {failure!r}") from failure

    def _stop_thread(self, *, crash: bool, timeout: float) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        self._hooks.crash = crash
        with contextlib.suppress(RuntimeError):  # the loop has already ended
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise BrokerError(f"the broker on {self.bootstrap} did not stop within {timeout} s")
        self._thread = self._loop = self._stop = None

    # -- a broker process -------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "moldau.testing.process", "--control", str(self.control_path),
               "--data-dir", str(self.data_dir), "--listen", self.bootstrap, "--log-level", self.log_level]
        if self.cluster_url is not None:
            cmd += ["--cluster", self.cluster_url]
        for key, value in self.settings.items():
            cmd += ["--set", f"{key}={value}"]
        return cmd

    def _start_process(self, timeout: float) -> None:
        if self.port == 0:
            self.port = _free_port(self.host)
        if self._client is not None:
            self._client.close()
        self.control_path.unlink(missing_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"\n=== {' '.join(self.command())}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         start_new_session=True)
        self._client = ControlClient(self.control_path)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BrokerError(f"the broker exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            if self.control_path.exists():
                try:
                    self._client.call("counts")
                    return
                except (OSError, ControlError):
                    self._client.close()
            if time.monotonic() > deadline:
                self._stop_process(signal.SIGKILL, 10)
                raise BrokerError(f"the broker was not ready within {timeout} s:\n{self.log_text()[-4000:]}")
            time.sleep(0.02)

    def _stop_process(self, sig: int, timeout: float) -> None:
        proc = self.proc
        if self._client is not None:
            self._client.close()
        if proc is None or proc.poll() is not None:
            return
        if self.paused:
            proc.send_signal(signal.SIGCONT)
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            raise BrokerError(f"the broker (pid {proc.pid}) did not stop within {timeout} s; killed") from None
