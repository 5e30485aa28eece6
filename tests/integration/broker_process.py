"""A Moldau broker running as a real subprocess, for integration tests.

Theory of operation: :class:`Broker` owns exactly one child process at a time
(the ``Popen`` it started) and only ever signals that PID. The broker's stderr
and stdout go to a log file inside a per-broker work folder, which survives
restarts (each start appends a marker line) so a failing test can show what the
broker said. The data directory is a separate folder that also survives
restarts; both are removed by :meth:`Broker.dispose`.

Readiness: after starting, we wait (bounded) until the log contains
"listening on" or a TCP connect to the port succeeds, and fail early with the
log if the process exits first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT = float(os.environ.get("MOLDAU_TEST_START_TIMEOUT", "15"))
STOP_TIMEOUT = float(os.environ.get("MOLDAU_TEST_STOP_TIMEOUT", "15"))
READY_MARKER = "listening on"


class BrokerError(RuntimeError):
    """The broker process did not start or stop as expected."""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago, outside the ephemeral range.

    A broker keeps its port across restarts; a port from the kernel's ephemeral range
    (what binding port 0 gives) can meanwhile become the source port of some client's
    outgoing connection, and the restart then fails with "address already in use".
    """
    low, high = _ephemeral_range()
    candidates = [p for p in range(10000, 30000) if not low <= p <= high] or list(range(10000, 30000))
    rng = random.Random()
    for _ in range(200):
        port = rng.choice(candidates)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _setting_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def normalize_settings(settings: dict[str, object]) -> dict[str, str]:
    """Kafka property names: ``message_max_bytes`` becomes ``message.max.bytes``."""
    return {key.replace("_", "."): _setting_value(value) for key, value in settings.items()}


def broker_command() -> list[str]:
    """How to run ``moldau``: ``python -m moldau`` if the package has a ``__main__``."""
    if importlib.util.find_spec("moldau.__main__") is not None:
        return [sys.executable, "-m", "moldau"]
    script = Path(sys.executable).with_name("moldau")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "moldau.cli.main"]


class Broker:
    """One ``moldau serve`` process on a loopback port chosen at run time."""

    def __init__(self, settings: dict[str, object] | None = None, name: str = "broker"):
        self.settings = normalize_settings(settings or {})
        self.name = name
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"moldau-it-{name}-"))
        self.data_dir = self.work_dir / "data"
        self.data_dir.mkdir()
        self.log_path = self.work_dir / "broker.log"
        self.log_path.touch()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.disposed = False

    # ---------------------------------------------------------------- info
    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, start: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def command(self) -> list[str]:
        cmd = [
            *broker_command(),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            self.bootstrap,
        ]
        for key, value in self.settings.items():
            cmd += ["--set", f"{key}={value}"]
        return cmd

    # ----------------------------------------------------------- lifecycle
    def start(self, timeout: float = START_TIMEOUT) -> Broker:
        if self.is_running():
            raise BrokerError(f"{self.name} already running as pid {self.pid}")
        self.starts += 1
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            log_start = log.tell()
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        self._wait_ready(timeout, log_start=log_start)
        return self

    def _wait_ready(self, timeout: float, log_start: int) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise BrokerError(
                    f"{self.name} exited with {code} before listening on {self.bootstrap}\n"
                    f"--- broker log ---\n{self.log_text()[-8000:]}"
                )
            if READY_MARKER in self.log_text(log_start) or self._can_connect():
                return
            if time.monotonic() > deadline:
                self._kill_and_wait()
                raise BrokerError(
                    f"{self.name} not ready on {self.bootstrap} after {timeout}s\n"
                    f"--- broker log ---\n{self.log_text()[-8000:]}"
                )
            time.sleep(0.05)

    def _can_connect(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _kill_and_wait(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)

    def _note(self, text: str) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"=== {text}\n".encode())

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait. Returns the exit code; raises if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_and_wait()
                self._note(f"did not exit {timeout}s after SIGTERM; SIGKILLed")
                raise BrokerError(
                    f"{self.name} (pid {self.proc.pid}) ignored SIGTERM for {timeout}s"
                ) from None
        self._note(f"stopped, exit code {self.proc.returncode}")
        return self.proc.returncode

    def kill9(self) -> int | None:
        """SIGKILL and wait: a crash with no chance to flush or clean up."""
        if self.proc is None:
            return None
        self._kill_and_wait()
        self._note(f"SIGKILLed, exit code {self.proc.returncode}")
        return self.proc.returncode

    def restart(self, timeout: float = START_TIMEOUT) -> Broker:
        """Stop (SIGTERM) if running, then start again on the same port and data dir."""
        if self.is_running():
            self.stop()
        return self.start(timeout)

    def dispose(self) -> None:
        """Kill our process if it is still alive and remove our folders."""
        if self.disposed:
            return
        self.disposed = True
        try:
            if self.is_running():
                with contextlib.suppress(BrokerError):
                    self.stop(timeout=5)
        finally:
            self._kill_and_wait()
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<Broker {self.name} {self.bootstrap} pid={self.pid} data={self.data_dir}>"
